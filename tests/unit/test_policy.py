"""The decision document parser (fail closed) and the embedded engine on the shipped policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from egress.errors import ConfigError
from egress.identity.model import Identity
from egress.policy import build_input, decision_from_document
from egress.policy.cache import CachedEngine
from egress.policy.decision import Decision
from egress.policy.embedded import EmbeddedEngine

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (None, "policy_undefined"),
        ([], "policy_malformed"),
        ("allow", "policy_malformed"),
        ({}, "policy_undefined"),
        ({"reason": "allowed"}, "policy_undefined"),
        ({"allow": "true", "reason": "allowed"}, "policy_malformed"),
        ({"allow": 1, "reason": "allowed"}, "policy_malformed"),
        ({"allow": True}, "policy_malformed"),
        ({"allow": True, "reason": 7}, "policy_malformed"),
        ({"allow": True, "reason": "allowed", "secrets": "github"}, "policy_malformed"),
        ({"allow": True, "reason": "allowed", "secrets": [1]}, "policy_malformed"),
        ({"allow": True, "reason": "allowed", "rules": {"a": 1}}, "policy_malformed"),
        ({"allow": True, "reason": "host_not_allowed"}, "policy_malformed"),
    ],
)
def test_malformed_documents_deny(doc: object, reason: str) -> None:
    d = decision_from_document(doc, engine="t", revision="r")
    assert d.allow is False
    assert d.reason == reason
    assert d.secrets == frozenset()


def test_well_formed_allow_and_deny() -> None:
    d = decision_from_document(
        {"allow": True, "reason": "allowed", "secrets": ["gh"], "rules": ["r1"], "_x": 1, "ttl": 5},
        engine="t",
        revision="r",
    )
    assert d.allow and d.secrets == {"gh"} and d.rules == ("r1",) and d.extra == {"ttl": 5}
    deny = decision_from_document(
        {"allow": False, "reason": "allowed", "secrets": ["gh"]}, engine="t", revision="r"
    )
    assert not deny.allow and deny.reason == "default_deny" and deny.secrets == frozenset()


ALICE = Identity("alice@example.com", "triage-bot", "ns")
BOB = Identity("bob@example.com", "triage-bot", "ns")


def _data(tmp_path: Path, killed: dict | None = None) -> Path:
    data = json.loads((REPO / "policies" / "data.json").read_text())
    if killed is not None:
        data["egress"]["killed"] = killed
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return path


def _req(method: str, host: str, path: str, scheme: str = "https", port: int = 443) -> dict:
    return {
        "phase": "request",
        "scheme": scheme,
        "host": host,
        "port": port,
        "method": method,
        "path": path,
    }


VECTORS = [
    (ALICE, _req("GET", "api.github.com", "/repos/o/r"), True, "allowed", {"github"}),
    (ALICE, _req("POST", "api.github.com", "/repos/o/r/issues"), True, "allowed", {"github"}),
    (ALICE, _req("GET", "API.GitHub.com.", "/user"), True, "allowed", {"github"}),
    (ALICE, _req("DELETE", "api.github.com", "/repos/o/r"), False, "method_not_allowed", set()),
    (ALICE, _req("GET", "api.github.com", "/admin"), False, "path_not_allowed", set()),
    (ALICE, _req("GET", "api.github.com", "/repos"), False, "path_not_allowed", set()),
    (
        ALICE,
        _req("GET", "api.github.com", "/repos/x", "http", 443),
        False,
        "scheme_not_allowed",
        set(),
    ),
    (
        ALICE,
        _req("GET", "api.github.com", "/repos/x", "http", 80),
        False,
        "host_not_allowed",
        set(),
    ),
    (ALICE, _req("GET", "api.github.com", "/repos/x", port=8443), False, "host_not_allowed", set()),
    (ALICE, _req("GET", "github.com", "/repos/x"), False, "host_not_allowed", set()),
    (ALICE, _req("GET", "api.github.com.evil.net", "/repos/x"), False, "host_not_allowed", set()),
    (ALICE, _req("HEAD", "files.pythonhosted.org", "/packages/x"), True, "allowed", set()),
    (ALICE, _req("POST", "pypi.org", "/legacy/"), False, "method_not_allowed", set()),
    (ALICE, _req("POST", "api.openai.com", "/v1/chat/completions"), True, "allowed", {"openai"}),
    (
        ALICE,
        {"phase": "connect", "host": "api.github.com", "port": 443},
        True,
        "allowed",
        {"github"},
    ),
    (
        ALICE,
        {"phase": "connect", "host": "evil.example", "port": 443},
        False,
        "host_not_allowed",
        set(),
    ),
    (BOB, _req("GET", "api.github.com", "/repos/o/r"), False, "agent_unknown", set()),
    (
        BOB,
        {"phase": "connect", "host": "api.github.com", "port": 443},
        False,
        "agent_unknown",
        set(),
    ),
]


@pytest.mark.parametrize(("identity", "request_", "allow", "reason", "secrets"), VECTORS)
def test_embedded_engine_vectors(tmp_path, identity, request_, allow, reason, secrets) -> None:
    engine = EmbeddedEngine(REPO / "policies", _data(tmp_path))
    d = engine.evaluate(build_input(identity, **request_))
    assert (d.allow, d.reason, set(d.secrets)) == (allow, reason, secrets)
    assert d.engine == "embedded" and d.revision.startswith("sha256:")


@pytest.mark.parametrize(
    "killed", [{"alice@example.com/triage-bot": True}, {"triage-bot": True}, {"*": True}]
)
def test_kill_switch(tmp_path, killed: dict) -> None:
    engine = EmbeddedEngine(REPO / "policies", _data(tmp_path, killed))
    d = engine.evaluate(build_input(ALICE, **_req("GET", "api.github.com", "/repos/o/r")))
    assert (d.allow, d.reason, d.secrets) == (False, "agent_killed", frozenset())


def test_kill_switch_of_other_agent_does_not_apply(tmp_path) -> None:
    engine = EmbeddedEngine(REPO / "policies", _data(tmp_path, {"bob@example.com/x": True}))
    d = engine.evaluate(build_input(ALICE, **_req("GET", "api.github.com", "/repos/o/r")))
    assert d.allow


def test_broken_policy_is_a_config_error_and_keeps_last_good(tmp_path) -> None:
    pol = tmp_path / "policies" / "egress" / "decision"
    pol.mkdir(parents=True)
    src = (REPO / "policies/egress/decision/decision.rego").read_text()
    (pol / "decision.rego").write_text(src)
    engine = EmbeddedEngine(tmp_path / "policies", _data(tmp_path))
    good = engine.revision
    (pol / "decision.rego").write_text(src + "\nallow if {{{ broken")
    with pytest.raises(ConfigError) as e:
        engine.load()
    assert e.value.reason == "policy_invalid"
    assert engine.revision == good
    assert engine.evaluate(build_input(ALICE, **_req("GET", "api.github.com", "/user"))).allow


def test_policy_that_sets_no_decision_denies(tmp_path) -> None:
    pol = tmp_path / "p" / "egress" / "decision"
    pol.mkdir(parents=True)
    (pol / "d.rego").write_text("package egress.decision\n\nallow if input.never\n")
    engine = EmbeddedEngine(tmp_path / "p", None)
    d = engine.evaluate(build_input(ALICE, **_req("GET", "x", "/")))
    assert d.allow is False
    assert d.reason in {"policy_undefined", "policy_malformed"}


def test_policy_allowing_with_string_denies(tmp_path) -> None:
    pol = tmp_path / "p" / "egress" / "decision"
    pol.mkdir(parents=True)
    (pol / "d.rego").write_text(
        'package egress.decision\n\nallow := "yes"\n\nreason := "allowed"\n'
    )
    d = EmbeddedEngine(tmp_path / "p", None).evaluate(build_input(ALICE, **_req("GET", "x", "/")))
    assert d.allow is False and d.reason == "policy_malformed"


class _Counting:
    name = "counting"

    def __init__(self, answers: list[Decision]) -> None:
        self.answers = answers
        self.calls = 0
        self.revision = "r1"

    async def decide(self, policy_input):
        self.calls += 1
        return self.answers[min(self.calls - 1, len(self.answers) - 1)]

    async def close(self) -> None:
        return None


def test_cache_hits_and_revision_invalidation() -> None:
    inner = _Counting([Decision(True, "allowed")])
    cache = CachedEngine(inner, max_entries=2)
    inp = build_input(ALICE, **_req("GET", "h", "/"))
    for _ in range(3):
        assert asyncio.run(cache.decide(inp)).allow
    assert inner.calls == 1 and cache.hits == 2
    inner.revision = "r2"
    asyncio.run(cache.decide(inp))
    assert inner.calls == 2
    for p in ("/a", "/b", "/c"):
        asyncio.run(cache.decide(build_input(ALICE, **_req("GET", "h", p))))
    assert len(cache._entries) == 2


def test_cache_does_not_keep_engine_failures() -> None:
    inner = _Counting([Decision(False, "policy_timeout"), Decision(True, "allowed")])
    cache = CachedEngine(inner)
    inp = build_input(ALICE, **_req("GET", "h", "/"))
    assert not asyncio.run(cache.decide(inp)).allow
    assert asyncio.run(cache.decide(inp)).allow
