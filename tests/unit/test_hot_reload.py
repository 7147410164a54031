"""The embedded engine follows policy and data edits, and keeps the last good policy on errors."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from egress.identity.model import Identity
from egress.policy import build_input
from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine

REPO = Path(__file__).resolve().parents[2]
ALICE = Identity("alice@example.com", "triage-bot", "ns")
INPUT = build_input(
    ALICE,
    phase="request",
    scheme="https",
    host="new.example.com",
    port=443,
    method="GET",
    path="/x",
)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    pol = tmp_path / "policies"
    shutil.copytree(REPO / "policies" / "egress", pol / "egress")
    data = tmp_path / "data.json"
    shutil.copy(REPO / "policies" / "data.json", data)
    return pol, data


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_data_change_is_picked_up_and_invalidates_cache(tmp_path) -> None:
    pol, data = _setup(tmp_path)
    engine = EmbeddedEngine(pol, data, reload_interval=0.0)
    cached = CachedEngine(engine)
    assert not asyncio.run(cached.decide(INPUT)).allow
    doc = json.loads(data.read_text())
    doc["egress"]["agents"]["alice@example.com"]["triage-bot"]["rules"].append(
        {"id": "new", "hosts": ["new.example.com"]}
    )
    _touch_later(data, json.dumps(doc))
    d = asyncio.run(_decide_until_allowed(cached))
    assert d.allow and d.rules == ("new",)
    assert engine.reloads == 1 and engine.last_changed_agents == 1


async def _decide_until_allowed(cached: CachedEngine, seconds: float = 10.0):
    """Through the cache the reload runs in the background: the old data answers until the new
    is ready, so poll (bounded) until the edit shows."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        d = await cached.decide(INPUT)
        if d.allow or loop.time() > deadline:
            return d
        await asyncio.sleep(0.02)


def test_broken_policy_keeps_last_good(tmp_path, capsys) -> None:
    pol, data = _setup(tmp_path)
    engine = EmbeddedEngine(pol, data, reload_interval=0.0)
    good = engine.revision
    rego = pol / "egress" / "decision" / "decision.rego"
    original = rego.read_text()
    _touch_later(rego, original + "\nallow if {{ broken\n")
    github = build_input(
        ALICE,
        phase="request",
        scheme="https",
        host="api.github.com",
        port=443,
        method="GET",
        path="/repos/o/r",
    )
    assert engine.evaluate(github).allow  # still the last good policy
    assert engine.revision == good and engine.last_error
    assert "policy reload failed" in capsys.readouterr().err
    _touch_later(rego, original.replace('"default_deny"', '"nothing_matched"'))
    assert engine.evaluate(INPUT).reason == "host_not_allowed"
    assert engine.revision != good and engine.last_error is None


def test_invalid_data_json_keeps_last_good(tmp_path) -> None:
    pol, data = _setup(tmp_path)
    engine = EmbeddedEngine(pol, data, reload_interval=0.0)
    _touch_later(data, "{not json")
    github = build_input(
        ALICE,
        phase="request",
        scheme="https",
        host="api.github.com",
        port=443,
        method="GET",
        path="/repos/o/r",
    )
    assert engine.evaluate(github).allow
    assert "invalid JSON" in (engine.last_error or "")


def test_reload_is_rate_limited(tmp_path) -> None:
    pol, data = _setup(tmp_path)
    engine = EmbeddedEngine(pol, data, reload_interval=60.0)
    _touch_later(data, data.read_text().replace("pypi.org", "pypi.example"))
    engine.evaluate(INPUT)
    assert engine.reloads == 0
    assert engine.maybe_reload(force=True)
    assert engine.reloads == 1
