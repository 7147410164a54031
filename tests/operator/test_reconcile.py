"""The operator's reconcile logic on a real Kubernetes API (kube-apiserver over etcd,
tests/support/kube.py): what it applies, drift, kill switch, idle stop, delete.

Each test uses its own owner and agent, because the server is shared for the session and
(with no namespace controller) a deleted namespace stays Terminating.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from egress.identity.credentials import hash_token
from egress.operator.cluster import KubeCluster
from egress.operator.reconcile import Reconciler
from egress.operator.render import AgentSpec, Platform, render_agent
from tests.support.kube import KubeServer

AGENTS = "/apis/egress.dev/v1alpha1/agents"


def _spec(owner: str, **extra: Any) -> dict[str, Any]:
    return {
        "owner": owner,
        "agent": "triage-bot",
        "image": "acme/agent:1",
        "egress": {"rules": [{"id": "gh", "hosts": ["api.github.com"]}]},
        "idleTimeoutMinutes": 30,
        **extra,
    }


def create_agent(kube: KubeServer, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": "egress.dev/v1alpha1", "kind": "Agent", "metadata": {"name": name}}
    with kube.client() as c:
        r = c.post(AGENTS, json={**body, "spec": spec})
        assert r.status_code == 201, r.text


def get_agent(kube: KubeServer, name: str) -> dict[str, Any]:
    with kube.client() as c:
        r = c.get(f"{AGENTS}/{name}")
        assert r.status_code == 200, r.text
        return r.json()


def _policy_data(cluster: KubeCluster) -> dict:
    cm = cluster.get("v1", "ConfigMap", "egress-system", "egress-policy-data")
    assert cm is not None
    return json.loads(cm["data"]["data.json"])


def _replicas(cluster: KubeCluster, ns: str) -> int:
    dep = cluster.get("apps/v1", "Deployment", ns, "agent")
    assert dep is not None
    return dep["spec"]["replicas"]


def _kinds(kube: KubeServer, ns: str) -> set[str]:
    paths = {
        "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
        "Secret": "/api/v1/namespaces/{ns}/secrets",
        "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
        "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
        "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    }
    found = set()
    with kube.client() as c:
        for kind, path in paths.items():
            r = c.get(path.format(ns=ns))
            assert r.status_code == 200, r.text
            if r.json()["items"]:
                found.add(kind)
    return found


@pytest.fixture
def agent(request, kube: KubeServer, cluster: KubeCluster):
    """A fresh Agent resource named after the test, and a Reconciler on the real API."""
    name = request.node.name.replace("_", "-")[:50].strip("-")
    spec = _spec(f"{name}@example.com")
    create_agent(kube, name, spec)
    activity: dict[str, float] = {}
    r = Reconciler(cluster, Platform(), lambda: activity)
    return name, spec, AgentSpec.from_resource(spec), r, activity


def test_reconcile_applies_everything_and_keeps_the_token(agent, kube, cluster) -> None:
    name, spec, s, r, _ = agent
    status = r.reconcile(spec)
    cluster.patch_agent(name, {"status": status})
    assert status["namespace"] == s.namespace and status["phase"] == "Running"
    assert get_agent(kube, name)["status"]["tokenHash"] == status["tokenHash"]
    assert _kinds(kube, s.namespace) == {
        "ServiceAccount",
        "Secret",
        "RoleBinding",
        "PersistentVolumeClaim",
        "NetworkPolicy",
        "Deployment",
    }
    ns = cluster.get("v1", "Namespace", None, s.namespace)
    assert ns["metadata"]["annotations"]["egress.dev/owner-identity"] == s.owner
    # the server stores the token base64-encoded under data: it must be read back, not re-minted
    secret = cluster.get("v1", "Secret", s.namespace, "egress-proxy-credential")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert hash_token(token) == status["tokenHash"]
    assert r.reconcile(spec)["tokenHash"] == status["tokenHash"]
    ids = json.loads(
        base64.b64decode(
            cluster.get("v1", "Secret", "egress-system", "egress-identities")["data"][
                "identities.json"
            ]
        )
    )
    mine = [a for a in ids["agents"] if a["user"] == s.owner]
    assert [a["token_sha256"] for a in mine] == [status["tokenHash"]]
    assert token not in json.dumps(ids)  # the proxy side never sees the token itself
    assert _policy_data(cluster)["egress"]["agents"][s.owner]["triage-bot"] == {
        "rules": spec["egress"]["rules"]
    }


def _dry_run(kube: KubeServer, ns: str, dep: dict) -> tuple:
    """Server-side dry run of the Deployment (PSA warn mode) and of a Pod made from its
    template (PSA enforce mode): (deployment status, warning header, pod status, pod body)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pss-check", "namespace": ns},
        "spec": dep["spec"]["template"]["spec"],
    }
    with kube.client() as c:
        d = c.patch(
            f"/apis/apps/v1/namespaces/{ns}/deployments/agent",
            params={"fieldManager": "pss-check", "dryRun": "All", "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
            content=json.dumps(dep),
        )
        p = c.post(f"/api/v1/namespaces/{ns}/pods", params={"dryRun": "All"}, json=pod)
    return d.status_code, d.headers.get("warning", ""), p.status_code, p.text


def test_rendered_workload_passes_restricted_pod_security_admission(agent, kube) -> None:
    """The agent namespace enforces (and warns on) Pod Security `restricted`. The real
    admission plugin accepts a pod built from the rendered template and has no warning for
    the Deployment; the same template made privileged is refused, so the check can fail."""
    _, spec, s, r, _ = agent
    r.reconcile(spec)
    dep = next(o for o in render_agent(s, Platform(), token="x") if o["kind"] == "Deployment")
    d_status, warning, p_status, p_body = _dry_run(kube, s.namespace, dep)
    assert (d_status, warning) == (200, "")
    assert p_status == 201, p_body

    bad = json.loads(json.dumps(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] = {
        "drop": ["ALL"],
        "add": ["NET_ADMIN"],
    }
    d_status, warning, p_status, p_body = _dry_run(kube, s.namespace, bad)
    assert d_status == 200 and "restricted" in warning and "NET_ADMIN" in warning
    assert p_status == 403 and "violates PodSecurity" in p_body


def test_drift_is_corrected(agent, cluster) -> None:
    _, spec, s, r, _ = agent
    r.reconcile(spec)
    cluster.delete(
        "networking.k8s.io/v1", "NetworkPolicy", s.namespace, "egress-only-through-the-platform"
    )
    # someone else scales the workload (another field manager, as kubectl scale would)
    cluster._api("apps/v1", "Deployment").server_side_apply(
        body={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "agent", "namespace": s.namespace},
            "spec": {"replicas": 5},
        },
        name="agent",
        namespace=s.namespace,
        field_manager="someone-else",
        force_conflicts=True,
    )
    assert _replicas(cluster, s.namespace) == 5
    r.reconcile(spec)  # what the drift timer runs
    assert (
        cluster.get(
            "networking.k8s.io/v1", "NetworkPolicy", s.namespace, "egress-only-through-the-platform"
        )
        is not None
    )
    assert _replicas(cluster, s.namespace) == 1


def test_kill_switch_scales_to_zero_and_kills_in_policy(agent, kube, cluster) -> None:
    name, spec, s, r, _ = agent
    r.reconcile(spec)
    cluster.patch_agent(name, {"spec": {"killSwitch": True}})
    killed = get_agent(kube, name)["spec"]
    assert r.reconcile(killed)["phase"] == "Killed"
    assert _replicas(cluster, s.namespace) == 0
    assert _policy_data(cluster)["egress"]["killed"][s.key] is True
    assert "PersistentVolumeClaim" in _kinds(kube, s.namespace)  # state kept


def test_idle_agent_is_stopped_and_resumes_with_one_field(agent, kube, cluster) -> None:
    name, spec, s, r, activity = agent
    now = time.time()
    activity[s.key] = now - 31 * 60
    r.reconcile(spec)
    assert r.reap_idle(name, spec, now=now)
    stored = get_agent(kube, name)
    assert stored["spec"]["stopped"] is True and stored["status"]["phase"] == "Stopped"
    r.reconcile(stored["spec"])
    assert _replicas(cluster, s.namespace) == 0
    assert {"PersistentVolumeClaim", "RoleBinding", "Secret"} <= _kinds(kube, s.namespace)
    cluster.patch_agent(name, {"spec": {"stopped": False}})
    resumed = get_agent(kube, name)["spec"]
    assert r.reconcile(resumed)["phase"] == "Running" and _replicas(cluster, s.namespace) == 1


def test_recent_or_unknown_activity_never_stops(agent) -> None:
    name, spec, s, r, activity = agent
    now = time.time()
    activity[s.key] = now - 60
    assert not r.reap_idle(name, spec, now=now)
    activity.clear()
    assert not r.reap_idle(name, spec, now=now)
    activity[s.key] = 0
    assert not r.reap_idle(name, {**spec, "idleTimeoutMinutes": 0}, now=now)


def test_delete_removes_namespace_and_rules(agent, kube, cluster) -> None:
    name, spec, s, r, _ = agent
    r.reconcile(spec)
    assert s.owner in _policy_data(cluster)["egress"]["agents"]
    with kube.client() as c:
        assert c.delete(f"{AGENTS}/{name}").status_code == 200
    r.delete(spec)
    ns = cluster.get("v1", "Namespace", None, s.namespace)
    # no namespace controller here: the real server marks it for deletion and keeps it
    # Terminating; in a cluster the controller then removes everything inside
    assert ns is None or ns["status"]["phase"] == "Terminating"
    assert s.owner not in _policy_data(cluster)["egress"]["agents"]


def test_handlers_register_with_kopf() -> None:
    import kopf

    import egress.operator.handlers  # noqa: F401 (registers on import)

    registry = kopf.get_default_registry()
    changing = sorted(h.id for h in registry._changing.get_all_handlers())
    timers = sorted(h.id for h in registry._spawning.get_all_handlers())
    assert changing == ["reconcile", "reconcile", "reconcile", "remove"]  # resume/create/update
    assert timers == ["correct_drift", "stop_idle"]
