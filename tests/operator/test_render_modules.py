"""Each render module on its own: the model (``spec``), the namespace and owner binding, the
network policy, the workload and the platform state; and ``render`` re-exports them unchanged."""

from __future__ import annotations

import json

from egress.operator import render, render_network, render_platform, render_workload, spec
from egress.operator.spec import AgentSpec, Platform

PLATFORM = Platform()
RESOURCE = {"owner": "alice@example.com", "agent": "triage-bot", "image": "agent:1"}


def test_spec_reads_the_resource_fields() -> None:
    s = AgentSpec.from_resource(
        {**RESOURCE, "killSwitch": True, "stopped": True, "idleTimeoutMinutes": 5}
    )
    assert (s.kill_switch, s.stopped, s.idle_timeout_minutes) == (True, True, 5)
    assert not s.running
    assert s.key == "alice@example.com/triage-bot"


def test_object_meta_carries_labels_and_raw_owner() -> None:
    s = AgentSpec.from_resource(RESOURCE)
    meta = spec.object_meta(s, "x", "ns1")
    assert meta["namespace"] == "ns1" and meta["labels"] == spec.labels(s)
    assert meta["annotations"] == {spec.ANNOTATION_OWNER: "alice@example.com"}
    assert "namespace" not in spec.object_meta(s, "cluster-scoped")


def test_namespace_and_owner_binding() -> None:
    s = AgentSpec.from_resource(RESOURCE)
    ns = render.render_namespace(s)
    assert ns["metadata"]["name"] == s.namespace
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    rb = render.render_owner_binding(s)
    assert rb["subjects"][0]["name"] == "alice@example.com"
    assert rb["metadata"]["namespace"] == s.namespace


def test_network_policy_opens_ui_only_when_asked() -> None:
    plain = render_network.render_network_policy(AgentSpec.from_resource(RESOURCE), PLATFORM)
    assert plain["spec"]["ingress"] == []
    with_ui = AgentSpec.from_resource({**RESOURCE, "ui": {"port": 3000}})
    np = render_network.render_network_policy(with_ui, PLATFORM)
    assert np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_workload_replicas_follow_running() -> None:
    running = render_workload.render_workload(AgentSpec.from_resource(RESOURCE), PLATFORM)
    assert running["spec"]["replicas"] == 1
    killed = AgentSpec.from_resource({**RESOURCE, "killSwitch": True})
    assert render_workload.render_workload(killed, PLATFORM)["spec"]["replicas"] == 0


def test_platform_state_policy_data_and_identities() -> None:
    s = AgentSpec.from_resource({**RESOURCE, "killSwitch": True})
    cm, secret = render_platform.render_platform_state([s], {s.key: "h"}, PLATFORM)
    data = json.loads(cm["data"]["data.json"])
    assert data["egress"]["killed"] == {s.key: True}
    ids = json.loads(secret["stringData"]["identities.json"])
    assert ids["agents"][0]["token_sha256"] == "h"


def test_render_reexports_are_the_same_objects() -> None:
    assert render.AgentSpec is spec.AgentSpec and render.Platform is spec.Platform
    assert render.render_workload is render_workload.render_workload
    assert render.render_policy_data is render_platform.render_policy_data
