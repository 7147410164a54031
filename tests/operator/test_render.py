"""Render functions, table-driven, and every rendered object against the real Kubernetes
schemas (kubernetes-validate, 1.37, strict)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from egress.identity.model import Identity
from egress.operator.render import (
    ANNOTATION_OWNER,
    AgentSpec,
    Platform,
    render_agent,
    render_platform_state,
    render_policy_data,
)
from egress.policy import build_input
from egress.policy.embedded import EmbeddedEngine

REPO = Path(__file__).resolve().parents[2]
K8S = "1.37.0"
PLATFORM = Platform()
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

RESOURCE = {
    "owner": "alice@example.com",
    "agent": "triage-bot",
    "image": "ghcr.io/acme/agent:1",
    "egress": {"rules": [{"id": "gh", "hosts": ["api.github.com"], "secrets": ["github"]}]},
    "ui": {"port": 8501},
}


def spec(**kw) -> AgentSpec:
    return AgentSpec.from_resource({**RESOURCE, **kw})


def _validate(obj: dict) -> None:
    if obj["apiVersion"].startswith("traefik.io/"):
        return  # third-party CRD kinds: no upstream schema to check against
    kubernetes_validate.validate(obj, K8S, strict=True)


@pytest.mark.parametrize(
    "resource",
    [
        RESOURCE,
        {**RESOURCE, "ui": None},
        {**RESOURCE, "killSwitch": True},
        {
            **RESOURCE,
            "stopped": True,
            "command": ["python", "-m", "agent"],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        },
    ],
)
def test_every_rendered_object_is_valid_kubernetes(resource: dict) -> None:
    objs = render_agent(AgentSpec.from_resource(resource), PLATFORM, token="egt_x")
    for obj in objs:
        _validate(obj)
    kinds = [o["kind"] for o in objs]
    assert kinds[:6] == [
        "Namespace",
        "ServiceAccount",
        "Secret",
        "RoleBinding",
        "PersistentVolumeClaim",
        "NetworkPolicy",
    ]
    for obj in render_platform_state(
        [AgentSpec.from_resource(resource)], {"alice@example.com/triage-bot": "ab" * 32}, PLATFORM
    ):
        _validate(obj)


@pytest.mark.parametrize(
    ("owner", "agent"),
    [
        ("alice@example.com", "triage-bot"),
        ("Bob.Smith+test@Example.COM", "a"),
        ("x" * 200 + "@example.com", "long-agent-name-" + "z" * 40),
        ("日本語@example.jp", "bot"),
        ("a.b@x.io", "bot"),
        ("a-b@x.io", "bot"),
    ],
)
def test_names_and_labels_are_valid_and_identity_stays_raw(owner: str, agent: str) -> None:
    s = spec(owner=owner, agent=agent)
    ns = s.namespace
    assert DNS_LABEL.match(ns) and len(ns) <= 63
    objs = render_agent(s, PLATFORM)
    for obj in objs:
        for v in obj["metadata"]["labels"].values():
            assert LABEL_VALUE.match(v) and len(v) <= 63
        assert obj["metadata"]["annotations"][ANNOTATION_OWNER] == owner  # raw, unchanged
    binding = next(o for o in objs if o["kind"] == "RoleBinding")
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": owner}
    ]


def test_owners_that_sanitize_alike_do_not_collide() -> None:
    a, b = spec(owner="a.b@x.io"), spec(owner="a-b@x.io")
    assert a.namespace != b.namespace
    assert spec().namespace == spec().namespace  # deterministic


def test_network_policy_is_default_deny_with_four_ways_out() -> None:
    np = next(o for o in render_agent(spec(ui=None), PLATFORM) if o["kind"] == "NetworkPolicy")
    assert np["spec"]["podSelector"] == {} and np["spec"]["ingress"] == []
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = [(e["ports"][0]["port"]) for e in np["spec"]["egress"]]
    assert ports == [53, 8080, 4000, 8200]
    assert all("ipBlock" not in str(e) for e in np["spec"]["egress"])  # no way to the internet


def test_workload_points_at_the_proxy_and_is_locked_down() -> None:
    dep = next(o for o in render_agent(spec(), PLATFORM) if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HTTPS_PROXY"] == (
        "http://triage-bot:$(EGRESS_PROXY_TOKEN)@egress-proxy.egress-system.svc.cluster.local:8080"
    )
    assert env["HTTP_PROXY"] == env["HTTPS_PROXY"]
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == env["NODE_EXTRA_CA_CERTS"]
    assert ".svc" in env["NO_PROXY"]
    sc = pod["containers"][0]["securityContext"]
    assert sc == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert dep["spec"]["replicas"] == 1


@pytest.mark.parametrize(("field", "value"), [("killSwitch", True), ("stopped", True)])
def test_kill_and_stop_scale_to_zero_but_keep_state(field: str, value: bool) -> None:
    objs = render_agent(spec(**{field: value}), PLATFORM)
    dep = next(o for o in objs if o["kind"] == "Deployment")
    assert dep["spec"]["replicas"] == 0
    assert {"PersistentVolumeClaim", "RoleBinding", "Namespace"} <= {o["kind"] for o in objs}


def test_ui_is_owner_only_behind_forward_auth() -> None:
    objs = render_agent(spec(), PLATFORM)
    mw = next(o for o in objs if o["kind"] == "Middleware")
    assert mw["spec"]["forwardAuth"]["address"].endswith("allowed_emails=alice@example.com")
    route = next(o for o in objs if o["kind"] == "IngressRoute")
    assert route["spec"]["routes"][0]["middlewares"] == [{"name": "owner-only"}]
    assert not any(
        o["kind"] in ("Middleware", "IngressRoute") for o in render_agent(spec(ui=None), PLATFORM)
    )


def test_policy_data_drives_the_real_policy(tmp_path) -> None:
    specs = [spec(), spec(owner="bob@example.com", killSwitch=True)]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(render_policy_data(specs)))
    engine = EmbeddedEngine(REPO / "policies", data)
    alice = Identity("alice@example.com", "triage-bot", specs[0].namespace)
    bob = Identity("bob@example.com", "triage-bot", specs[1].namespace)
    req = {
        "phase": "request",
        "scheme": "https",
        "host": "api.github.com",
        "port": 443,
        "method": "GET",
        "path": "/repos/x",
    }
    d = engine.evaluate(build_input(alice, **req))
    assert d.allow and d.secrets == {"github"}
    assert engine.evaluate(build_input(bob, **req)).reason == "agent_killed"


def test_agent_resources_validate_against_the_crd_schema() -> None:
    crd = yaml.safe_load((REPO / "deploy/crd/agent.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate({"spec": RESOURCE | {"ui": {"port": 8501}}}, schema)
    for bad in (
        {**RESOURCE, "agent": "Bad_Name"},
        {k: v for k, v in RESOURCE.items() if k != "owner"},
        {**RESOURCE, "idleTimeoutMinutes": -1},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"spec": bad}, schema)
