"""The proxy with secrets in a real OpenBao server: swap, audit trail, CLI, failing closed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import hvac
import orjson
import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.openbao import BaoServer, start_bao
from tests.support.proxy import REPO, ProxyProcess, start_proxy

VAULT_VALUE = "ghs_from_openbao_real_value_987654321"


@pytest.fixture
def bao_world(world: World, tmp_path) -> Iterator[tuple[BaoServer, ProxyProcess, str, object]]:
    audit = tmp_path / "audit.log"
    bao = start_bao(audit_file=audit)
    admin = hvac.Client(bao.url, token=bao.token)
    admin.secrets.kv.v2.create_or_update_secret(  # agent-readable: the proxy must never touch
        path="agents/alice@example.com/triage-bot/readable",
        mount_point="kv",
        secret={"value": "agent-readable-value"},
    )
    put = subprocess.run(
        [
            sys.executable,
            "-m",
            "egress",
            "secrets",
            "put",
            "--vault-addr",
            bao.url,
            "--user",
            "alice@example.com",
            "--agent",
            "triage-bot",
            "--name",
            "github",
            "--hosts",
            "localhost",
            "--placeholder-prefix",
            "ghp_",
        ],
        input=VAULT_VALUE + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "VAULT_TOKEN": bao.token},
    )
    assert put.returncode == 0, put.stderr
    assert "in Vault" in put.stdout and VAULT_VALUE not in put.stdout
    placeholder = put.stdout.strip().splitlines()[-1]
    state = tmp_path / "state"
    state.mkdir()
    (state / "identities.json").write_bytes((world.state_dir / "identities.json").read_bytes())
    proxy = start_proxy(
        state_dir=state,
        ca_dir=world.ca_dir,
        data_file=world.data_file,
        upstream_ca=world.test_ca.cert_path,
        extra_args=[
            "--vault-addr",
            bao.url,
            "--vault-token",
            bao.token,
            "--secrets-ttl",
            "0.5",
            "--vault-timeout",
            "0.5",
        ],
    )
    yield bao, proxy, placeholder, audit
    proxy.stop()
    bao.stop()


def test_swap_from_vault_and_never_reads_agent_secrets(world: World, bao_world) -> None:
    bao, proxy, placeholder, audit = bao_world
    with http_client(proxy, world.alice) as c:
        r = c.get(
            f"{world.origin.url}/api/vault", headers={"Authorization": f"Bearer {placeholder}"}
        )
    assert r.status_code == 200, r.text
    assert world.origin.seen[-1].headers["authorization"] == f"Bearer {VAULT_VALUE}"
    assert VAULT_VALUE not in r.text and VAULT_VALUE not in str(r.headers)
    assert f"Bearer {placeholder}" in r.text  # the echo came back scrubbed
    proxy.stop()
    assert VAULT_VALUE not in proxy.log_path.read_text()
    assert all(VAULT_VALUE not in line for line in proxy.output)
    # every Vault request, as OpenBao's own audit device recorded it
    requests = [
        (d["request"]["operation"], d["request"]["path"])
        for d in map(orjson.loads, audit.read_bytes().splitlines())
        if d.get("type") == "request"
    ]
    reads = [(op, path) for op, path in requests if op in ("read", "list")]
    assert ("read", "kv/data/proxy-secrets/alice@example.com/triage-bot/github") in reads
    assert ("create", "kv/data/agents/alice@example.com/triage-bot/readable") in requests
    assert not [
        path for _, path in reads if path.startswith(("kv/data/agents", "kv/metadata/agents"))
    ]


def test_vault_down_denies_with_reason_and_never_forwards_placeholder(
    world: World, bao_world
) -> None:
    bao, proxy, placeholder, _ = bao_world
    with http_client(proxy, world.alice) as c:  # the proxy learns alice's secrets to scrub
        assert c.get(f"{world.origin.url}/api/no-secret").status_code == 200
    bao.kill()
    time.sleep(0.7)  # past the per-agent index TTL
    before = len(world.origin.seen)
    with http_client(proxy, world.alice) as c:
        r = c.get(
            f"{world.origin.url}/api/vault", headers={"Authorization": f"Bearer {placeholder}"}
        )
        plain = c.get(f"{world.origin.url}/api/no-secret")
    assert r.status_code == 403
    assert r.json()["reason"] == "secret_unavailable"
    assert len(world.origin.seen) == before + 1  # only the request without a placeholder
    assert world.origin.seen[-1].path == "/api/no-secret"
    assert plain.status_code == 200
    assert all(placeholder not in repr(s.headers) for s in world.origin.seen)
    event = proxy.event_for(r.json()["decision_id"])
    assert event["result"]["reason"] == "secret_unavailable" and event["secrets"] == []
