"""`egress operator` (kopf) as a real process against the real kube-apiserver: an Agent created
through the API becomes a namespace with its workload and a Running status; flipping
`killSwitch` scales it to zero and marks it killed in the proxy's policy data; deleting the
Agent removes its rules (kopf's finalizer holds the delete until the handler has run)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from egress.operator.render import AgentSpec
from tests.operator.test_reconcile import AGENTS, create_agent
from tests.support.kube import KubeServer
from tests.support.origin import free_port
from tests.support.process import ManagedProcess


def _wait(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> tuple[Any, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = probe()
        if value:
            return value, time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def operator(kube: KubeServer, tmp_path):
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    env["EGRESS_PROXY_ADMIN"] = "http://127.0.0.1:9"  # no proxy: activity unknown, never reaps
    log = open(tmp_path / "operator.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "egress"),
            "operator",
            "--standalone",
            "--liveness",
            f"http://127.0.0.1:{free_port()}/healthz",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "operator.log").read_text()
    managed = ManagedProcess()
    managed.proc = proc
    yield proc
    managed.stop()
    log.close()
    sys.stdout.write((tmp_path / "operator.log").read_text(errors="replace")[-4000:])


def test_operator_process_creates_kills_and_deletes(operator, kube: KubeServer) -> None:
    spec = {
        "owner": "ops-e2e@example.com",
        "agent": "runner",
        "image": "acme/agent:1",
        "egress": {"rules": [{"id": "gh", "hosts": ["api.github.com"]}]},
    }
    s = AgentSpec.from_resource(spec)
    create_agent(kube, "ops-e2e", spec)

    def status() -> dict:
        with kube.client() as c:
            return c.get(f"{AGENTS}/ops-e2e").json().get("status") or {}

    def replicas() -> int | None:
        with kube.client() as c:
            r = c.get(f"/apis/apps/v1/namespaces/{s.namespace}/deployments/agent")
            return r.json()["spec"]["replicas"] if r.status_code == 200 else None

    def policy_data() -> dict:
        with kube.client() as c:
            r = c.get("/api/v1/namespaces/egress-system/configmaps/egress-policy-data")
            return json.loads(r.json()["data"]["data.json"]) if r.status_code == 200 else {}

    running, t_create = _wait("Running", lambda: status().get("phase"))
    assert running == "Running"
    assert replicas() == 1
    assert policy_data()["egress"]["agents"][s.owner]["runner"]["rules"][0]["id"] == "gh"
    with kube.client() as c:
        secret = c.get(f"/api/v1/namespaces/{s.namespace}/secrets/egress-proxy-credential")
        assert secret.status_code == 200
        assert base64.b64decode(secret.json()["data"]["token"]).startswith(b"egt_")

    with kube.client() as c:
        r = c.patch(
            f"{AGENTS}/ops-e2e",
            json={"spec": {"killSwitch": True}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
    _, t_kill = _wait("scaled to zero", lambda: replicas() == 0)
    assert policy_data()["egress"]["killed"][s.key] is True
    _wait("Killed", lambda: status().get("phase") == "Killed")

    with kube.client() as c:
        assert c.delete(f"{AGENTS}/ops-e2e").status_code == 200

    def gone() -> bool:
        with kube.client() as c:
            return c.get(f"{AGENTS}/ops-e2e").status_code == 404

    _wait("Agent deleted after the operator's finalizer", gone)
    assert s.owner not in policy_data()["egress"]["agents"]
    print(f"operator: create->Running {t_create:.2f}s, killSwitch->replicas 0 {t_kill:.2f}s")
