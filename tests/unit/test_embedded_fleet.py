"""The embedded engine at fleet scale: per-agent slices, incremental reloads, fail-closed Wasm.

Real parts: policies compiled by the real OPA binary (bin/opa) to Wasm and run by wasmtime.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from egress.errors import ConfigError
from egress.identity.model import Identity
from egress.policy import build_input, wasm_compile
from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine
from egress.policy.slices import slice_data
from tests.support.slow_policy import slow_policies

REPO = Path(__file__).resolve().parents[2]


def _rules(i: int) -> list[dict[str, Any]]:
    return [
        {"id": f"r{j}", "hosts": [f"h{j}.a{i}.example.com"], "methods": ["GET"], "paths": ["/v1/"]}
        for j in range(20)
    ]


def _fleet(n: int, **extra: Any) -> dict[str, Any]:
    agents = {f"u{i}@example.com": {f"bot{i}": {"rules": _rules(i)}} for i in range(n)}
    return {"egress": {"agents": agents, "killed": {}, **extra}}


def _input(i: int, host: str, path: str = "/v1/x", method: str = "GET") -> dict[str, Any]:
    who = Identity(f"u{i}@example.com", f"bot{i}", "ns")
    return build_input(
        who, phase="request", scheme="https", host=host, port=443, method=method, path=path
    )


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    return path


def _policies(tmp_path: Path, extra: str = "") -> Path:
    pol = tmp_path / "policies"
    shutil.copytree(REPO / "policies" / "egress", pol / "egress")
    if extra:
        (pol / "egress" / "decision" / "extra.rego").write_text(extra)
    return pol


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedEngine:
    root = tmp_path_factory.mktemp("fleet")
    data = _write(root / "data.json", _fleet(2000, killed={"u5@example.com/bot5": True}))
    return EmbeddedEngine(REPO / "policies", data, workers=0)


@pytest.mark.parametrize(
    ("agent", "host", "path", "method", "allow", "reason"),
    [
        (7, "h3.a7.example.com", "/v1/x", "GET", True, "allowed"),
        (1999, "h19.a1999.example.com", "/v1/", "GET", True, "allowed"),
        (7, "h3.a8.example.com", "/v1/x", "GET", False, "host_not_allowed"),  # another's host
        (7, "h3.a7.example.com", "/v2/x", "GET", False, "path_not_allowed"),
        (7, "h3.a7.example.com", "/v1/x", "POST", False, "method_not_allowed"),
        (5, "h3.a5.example.com", "/v1/x", "GET", False, "agent_killed"),
        (2000, "h3.a2000.example.com", "/v1/x", "GET", False, "agent_unknown"),
    ],
)
def test_decisions_on_a_2000_agent_fleet(
    fleet: EmbeddedEngine,
    agent: int,
    host: str,
    path: str,
    method: str,
    allow: bool,
    reason: str,
) -> None:
    d = fleet.evaluate(_input(agent, host, path, method))
    assert (d.allow, d.reason) == (allow, reason)
    assert fleet.agent_count == 2000


def test_a_user_with_other_agents_is_still_unknown_for_a_missing_name(tmp_path: Path) -> None:
    data = _write(tmp_path / "d.json", _fleet(3))
    engine = EmbeddedEngine(REPO / "policies", data, workers=0)
    who = Identity("u1@example.com", "bot-missing", "ns")
    doc = build_input(who, phase="request", scheme="https", host="h1.a1.example.com", port=443)
    assert engine.evaluate(doc).reason == "agent_unknown"


def test_slices_keep_shared_parts_and_cut_agents() -> None:
    raw = json.dumps({"other": [1], **_fleet(3, report_only={"*": True})}).encode()
    s = slice_data(raw)
    assert s.sliced and s.agent_count == 3
    assert {p for p, _ in s.parts} == {("other",), ("egress", "killed"), ("egress", "report_only")}
    doc = json.loads(s.document("u1@example.com", "bot1"))
    assert list(doc["egress"]["agents"]) == ["u1@example.com"]
    assert doc["other"] == [1] and doc["egress"]["report_only"] == {"*": True}
    nobody = json.loads(s.document("nobody", "x"))
    assert nobody["egress"]["agents"] == {} and nobody["egress"]["killed"] == {}


@pytest.mark.parametrize("agent", [3, 4])
def test_large_shared_data_is_linked_not_rewritten(tmp_path: Path, agent: int) -> None:
    """Shared data over the inline limit (here a 3,000-entry kill list) is parsed once per
    instance and linked into each decision; the answers are the same."""
    killed = {f"u{i}@example.com/bot{i}": True for i in range(3, 3000, 2)}
    data = _write(tmp_path / "d.json", _fleet(10, killed=killed))
    engine = EmbeddedEngine(REPO / "policies", data, workers=0)
    assert not engine._snapshot.slices.inline
    d = engine.evaluate(_input(agent, f"h1.a{agent}.example.com"))
    assert d.reason == ("agent_killed" if agent == 3 else "allowed")


@pytest.mark.parametrize(
    "doc",
    [{"egress": {"agents": []}}, {"egress": 5}, {"x": 1}, {}],
)
def test_data_without_an_agents_object_is_shared_whole(doc: dict[str, Any]) -> None:
    s = slice_data(json.dumps(doc).encode())
    assert not s.sliced and s.inline
    assert json.loads(s.document("u", "n")) == doc  # small shared data: written in whole
    assert {p[0] for p, _ in s.parts} == set(doc)


@pytest.mark.parametrize("raw", [b"{nope", b"[]", b'"x"', b"3"])
def test_data_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(ConfigError) as e:
        slice_data(raw)
    assert e.value.reason == "policy_data_invalid"


def test_one_agents_edit_reloads_only_that_agent_and_keeps_others_cached(tmp_path: Path) -> None:
    doc = _fleet(300)
    data = _write(tmp_path / "d.json", doc)
    engine = EmbeddedEngine(REPO / "policies", data, reload_interval=0.0, workers=1)
    cached = CachedEngine(engine)

    async def run() -> None:
        other = _input(1, "h1.a1.example.com")
        target = _input(2, "new.example.com")
        assert (await cached.decide(other)).allow
        assert not (await cached.decide(target)).allow
        before = engine.revision
        doc["egress"]["agents"]["u2@example.com"]["bot2"]["rules"].append(
            {"id": "new", "hosts": ["new.example.com"]}
        )
        _write(data, doc)
        for _ in range(500):
            d = await cached.decide(target)
            if d.allow:
                break
            await asyncio.sleep(0.01)
        assert d.allow and d.rules == ("new",)
        assert engine.last_changed_agents == 1 and engine.revision != before
        hits = cached.hits
        again = await cached.decide(other)  # agent 1's entry did not change: still cached
        assert cached.hits == hits + 1 and again.allow
        assert again.revision == engine.revision  # told under the revision now in force

    asyncio.run(run())
    asyncio.run(engine.close())


def test_old_snapshot_answers_while_a_reload_is_built(tmp_path: Path) -> None:
    """A reload that takes long (held here on an event) never stalls decisions: they are
    answered by the previous snapshot until the new one is swapped in."""
    doc = _fleet(5)
    data = _write(tmp_path / "d.json", doc)
    release, entered = threading.Event(), threading.Event()

    class HeldEngine(EmbeddedEngine):
        def _build(self, old):  # type: ignore[no-untyped-def]
            if old is not None:
                entered.set()
                release.wait(30)
            return super()._build(old)

    engine = HeldEngine(REPO / "policies", data, reload_interval=0.0, workers=1)

    async def run() -> None:
        target = _input(2, "new.example.com")
        doc["egress"]["agents"]["u2@example.com"]["bot2"]["rules"].append(
            {"id": "new", "hosts": ["new.example.com"]}
        )
        _write(data, doc)
        first = await engine.decide(target)  # starts the reload in the background
        assert await asyncio.to_thread(entered.wait, 10)
        during = [await engine.decide(target) for _ in range(20)]
        assert not first.allow and not any(d.allow for d in during)
        release.set()
        for _ in range(500):
            if (await engine.decide(target)).allow:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the reload never landed")

    asyncio.run(run())
    asyncio.run(engine.close())


def test_a_policy_needing_a_host_builtin_is_refused(tmp_path: Path) -> None:
    pol = _policies(
        tmp_path,
        'package egress.decision\n\nfetched := http.send({"method": "GET", "url": input.u})\n',
    )
    with pytest.raises(ConfigError) as e:
        EmbeddedEngine(pol, REPO / "policies" / "data.json", workers=0)
    assert e.value.reason == "policy_invalid" and "http.send" in str(e.value)


def test_a_policy_that_aborts_fails_closed_and_the_engine_recovers(tmp_path: Path) -> None:
    # two complete rules giving `conflict` different values: OPA's Wasm aborts the evaluation
    pol = _policies(
        tmp_path,
        "package egress.decision\n\n"
        'conflict := "a" if input.request.path == "/boom"\n\n'
        'conflict := "b" if input.request.path == "/boom"\n',
    )
    engine = EmbeddedEngine(pol, REPO / "policies" / "data.json", workers=0)
    alice = Identity("alice@example.com", "triage-bot", "ns")

    def get(path: str) -> Any:
        return engine.evaluate(
            build_input(
                alice,
                phase="request",
                scheme="https",
                host="api.github.com",
                port=443,
                method="GET",
                path=path,
            )
        )

    boom = get("/boom")
    assert (boom.allow, boom.reason) == (False, "policy_error")
    assert get("/repos/o/r").allow  # a fresh instance answers the next decision


def test_a_policy_opa_refuses_keeps_nothing_open(tmp_path: Path) -> None:
    pol = _policies(tmp_path, "package egress.decision\n\nallow if {{ broken\n")
    with pytest.raises(ConfigError) as e:
        EmbeddedEngine(pol, None, workers=0)
    assert e.value.reason == "policy_invalid"


def test_missing_opa_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EGRESS_OPA_BIN", str(tmp_path / "none"))
    monkeypatch.setenv("OPA", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(wasm_compile, "_SOURCE_BIN", tmp_path / "none")
    with pytest.raises(ConfigError) as e:
        EmbeddedEngine(REPO / "policies", None, workers=0)
    assert e.value.reason == "policy_compiler_missing" and "make opa" in str(e.value)


def test_entry_module_exposes_every_public_non_function_rule(tmp_path: Path) -> None:
    pol = _policies(
        tmp_path,
        'package egress.decision\n\nteam := "platform"\n\n_private := 1\n\nhelper(x) := x\n',
    )
    compiled = wasm_compile.compile_policy(pol)
    assert {"allow", "reason", "secrets", "rules", "report", "passthrough", "team"} <= set(
        compiled.rules
    )
    assert "_private" not in compiled.rules and "helper" not in compiled.rules
    engine = EmbeddedEngine(pol, REPO / "policies" / "data.json", workers=0)
    d = engine.evaluate(_input(1, "x.example.com"))
    assert d.extra.get("team") == "platform"


def test_one_agents_flood_of_misses_does_not_queue_in_front_of_another(tmp_path: Path) -> None:
    """Ten slow decisions of bob at once, then one of alice: with two worker threads bob may
    hold only one, so alice's decision is answered before bob's queue has drained."""
    pol = slow_policies(tmp_path, "bob@example.com", 700)
    engine = EmbeddedEngine(pol, REPO / "policies" / "data.json", workers=2)
    bob = Identity("bob@example.com", "triage-bot", "ns")
    alice = Identity("alice@example.com", "triage-bot", "ns")

    def doc(who: Identity, i: int) -> dict[str, Any]:
        return build_input(
            who, phase="request", scheme="https", host="api.github.com", port=443, path=f"/{i}"
        )

    async def run() -> None:
        done: list[str] = []

        async def decide(who: Identity, i: int) -> None:
            await engine.decide(doc(who, i))
            done.append(who.user)

        floods = [asyncio.create_task(decide(bob, i)) for i in range(10)]
        await asyncio.sleep(0.05)
        await decide(alice, 0)
        bob_done_first = done.count("bob@example.com")
        await asyncio.gather(*floods)
        assert bob_done_first <= 2, f"alice waited behind {bob_done_first} of bob's decisions"
        assert engine._slots == {}  # nothing left behind per agent

    asyncio.run(run())
    asyncio.run(engine.close())
