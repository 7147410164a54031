"""The operator's reconcile logic: what it applies, drift, kill switch, idle stop, delete.

Runs against tests/support/fake_cluster.py (see its docstring: no API server can run here);
every applied object is validated against the Kubernetes 1.37 schemas on the way in.
"""

from __future__ import annotations

import json
import time

from egress.credentials import hash_token
from egress.operator.reconcile import Reconciler
from egress.operator.render import AgentSpec, Platform
from tests.support.fake_cluster import FakeCluster

SPEC = {
    "owner": "alice@example.com",
    "agent": "triage-bot",
    "image": "acme/agent:1",
    "egress": {"rules": [{"id": "gh", "hosts": ["api.github.com"]}]},
    "idleTimeoutMinutes": 30,
}
NS = AgentSpec.from_resource(SPEC).namespace


def _setup(activity: dict[str, float] | None = None) -> tuple[FakeCluster, Reconciler]:
    cluster = FakeCluster()
    cluster.add_agent("alice-triage", SPEC)
    return cluster, Reconciler(cluster, Platform(), lambda: activity or {})


def _record_status(cluster: FakeCluster, status: dict) -> None:
    cluster.patch_agent("alice-triage", {"status": status})


def _policy_data(cluster: FakeCluster) -> dict:
    cm = cluster.get("v1", "ConfigMap", "egress-system", "egress-policy-data")
    return json.loads(cm["data"]["data.json"])


def _replicas(cluster: FakeCluster) -> int:
    return cluster.get("apps/v1", "Deployment", NS, "agent")["spec"]["replicas"]


def test_reconcile_applies_everything_and_keeps_the_token() -> None:
    cluster, r = _setup()
    status = r.reconcile(SPEC)
    _record_status(cluster, status)
    assert status["namespace"] == NS and status["phase"] == "Running"
    assert {
        "ServiceAccount",
        "Secret",
        "RoleBinding",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Deployment",
    } <= cluster.kinds(NS)
    token = cluster.get("v1", "Secret", NS, "egress-proxy-credential")["stringData"]["token"]
    assert hash_token(token) == status["tokenHash"]
    again = r.reconcile(SPEC)
    assert again["tokenHash"] == status["tokenHash"]  # minted once
    ids = json.loads(
        cluster.get("v1", "Secret", "egress-system", "egress-identities")["stringData"][
            "identities.json"
        ]
    )
    assert ids["agents"][0]["token_sha256"] == status["tokenHash"]
    assert token not in json.dumps(ids)  # the proxy side never sees the token itself
    assert _policy_data(cluster)["egress"]["agents"]["alice@example.com"]["triage-bot"] == {
        "rules": SPEC["egress"]["rules"]
    }


def test_drift_is_corrected() -> None:
    cluster, r = _setup()
    r.reconcile(SPEC)
    cluster.delete("networking.k8s.io/v1", "NetworkPolicy", NS, "egress-only-through-the-platform")
    dep = cluster.objects[("apps/v1", "Deployment", NS, "agent")]
    dep["spec"]["replicas"] = 5
    r.reconcile(SPEC)  # what the drift timer runs
    assert (
        cluster.get("networking.k8s.io/v1", "NetworkPolicy", NS, "egress-only-through-the-platform")
        is not None
    )
    assert _replicas(cluster) == 1


def test_kill_switch_scales_to_zero_and_kills_in_policy() -> None:
    cluster, r = _setup()
    r.reconcile(SPEC)
    killed = {**SPEC, "killSwitch": True}
    cluster.patch_agent("alice-triage", {"spec": {"killSwitch": True}})
    assert r.reconcile(killed)["phase"] == "Killed"
    assert _replicas(cluster) == 0
    assert _policy_data(cluster)["egress"]["killed"] == {"alice@example.com/triage-bot": True}
    assert "PersistentVolumeClaim" in cluster.kinds(NS)  # state kept


def test_idle_agent_is_stopped_and_resumes_with_one_field() -> None:
    now = time.time()
    cluster, r = _setup({"alice@example.com/triage-bot": now - 31 * 60})
    r.reconcile(SPEC)
    assert r.reap_idle("alice-triage", SPEC, now=now)
    agent = cluster.list_agents()[0]
    assert agent["spec"]["stopped"] is True and agent["status"]["phase"] == "Stopped"
    r.reconcile(agent["spec"])
    assert _replicas(cluster) == 0
    assert {"PersistentVolumeClaim", "RoleBinding", "Secret"} <= cluster.kinds(NS)
    resumed = {**agent["spec"], "stopped": False}
    assert r.reconcile(resumed)["phase"] == "Running" and _replicas(cluster) == 1


def test_recent_or_unknown_activity_never_stops() -> None:
    now = time.time()
    _, r = _setup({"alice@example.com/triage-bot": now - 60})
    assert not r.reap_idle("alice-triage", SPEC, now=now)
    _, r = _setup({})
    assert not r.reap_idle("alice-triage", SPEC, now=now)
    _, r = _setup({"alice@example.com/triage-bot": 0})
    assert not r.reap_idle("alice-triage", {**SPEC, "idleTimeoutMinutes": 0}, now=now)


def test_delete_removes_namespace_and_rules() -> None:
    cluster, r = _setup()
    r.reconcile(SPEC)
    del cluster.objects[("egress.dev/v1alpha1", "Agent", None, "alice-triage")]
    r.delete(SPEC)
    assert cluster.kinds(NS) == set()
    assert _policy_data(cluster)["egress"]["agents"] == {}


def test_handlers_register_with_kopf() -> None:
    import kopf

    import egress.operator.handlers  # noqa: F401 (registers on import)

    registry = kopf.get_default_registry()
    changing = sorted(h.id for h in registry._changing.get_all_handlers())
    timers = sorted(h.id for h in registry._spawning.get_all_handlers())
    assert changing == ["reconcile", "reconcile", "reconcile", "remove"]  # resume/create/update
    assert timers == ["correct_drift", "stop_idle"]
