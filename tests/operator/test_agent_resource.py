"""The Agent resource is spelled once in Python (``egress.kube.agents``) and once in YAML
(``deploy/crd/agent.yaml``): the two must name the same group, version, kind, plural and
spec fields, or the operator and the kill watch would follow a resource no cluster serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from egress.kube import agents

CRD = Path(__file__).resolve().parents[2] / "deploy" / "crd" / "agent.yaml"


def _crd() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD.read_text()) if d]
    (crd,) = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    return crd


def test_crd_names_equal_the_constants() -> None:
    spec = _crd()["spec"]
    assert spec["group"] == agents.GROUP
    assert spec["names"]["kind"] == agents.KIND
    assert spec["names"]["plural"] == agents.PLURAL
    assert agents.VERSION in [v["name"] for v in spec["versions"]]
    assert _crd()["metadata"]["name"] == f"{agents.PLURAL}.{agents.GROUP}"
    assert f"{agents.GROUP}/{agents.VERSION}" == agents.API_VERSION
    assert f"/apis/{agents.GROUP}/{agents.VERSION}/{agents.PLURAL}" == agents.AGENTS_PATH


def test_crd_schema_has_the_spec_fields() -> None:
    (version,) = [v for v in _crd()["spec"]["versions"] if v["name"] == agents.VERSION]
    fields = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for name in (
        agents.SPEC_OWNER,
        agents.SPEC_AGENT,
        agents.SPEC_KILL_SWITCH,
        agents.SPEC_STOPPED,
        agents.SPEC_IDLE_TIMEOUT,
    ):
        assert name in fields, name


def test_kill_key_reads_the_spec_fields() -> None:
    on = {"metadata": {"name": "a1"}, "spec": {"owner": "u@x", "agent": "bot", "killSwitch": True}}
    assert agents._key(on) == ("a1", "u@x/bot")
    off = {**on, "spec": {**on["spec"], "killSwitch": False}}
    assert agents._key(off) == ("a1", None)
