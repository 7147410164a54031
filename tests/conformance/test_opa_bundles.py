"""The OPA engine with OPA run as in production: the real bin/opa pulls the policy bundle from
``egress policy bundle serve`` (BundleServer here), and the bundle revision keys the cache.

Over the wire through CachedEngine: the decisions match the vector table; a data edit becomes a
new bundle revision, OPA activates it, the engine's revision follows and the cached answer from
before is not served; with 20,000 agents the engine gets ready without ever reading /v1/data
(every request it sends passes a recording relay in front of OPA).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from egress.policy.bundle_server import BundleServer
from egress.policy.cache import CachedEngine
from egress.policy.opa import BUNDLES_PATH, OpaEngine
from egress.testing.opa_fleet import RecordingProxy, fleet_data, start_bundle_opa
from tests.support.opa import opa_binary

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((Path(__file__).parent / "decision_vectors.json").read_text())
ALLOWED = next(c for c in VECTORS["cases"] if c["name"] == "github get repo")
ALICE = "alice@example.com/triage-bot"


@pytest.fixture
def bundled(tmp_path: Path) -> Iterator[tuple[BundleServer, str, Path]]:
    """A bundle server over a copy of the vector data, and a real OPA pulling from it."""
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(VECTORS["data"]))
    server = BundleServer(REPO / "policies", data_file, poll_interval=0.2).start()
    opa = start_bundle_opa(server.url, tmp_path, opa_binary())
    yield server, opa.url, data_file
    opa.stop()
    server.stop()


def _shape(d: Any) -> dict[str, Any]:
    return {
        "allow": d.allow,
        "reason": d.reason,
        "secrets": sorted(d.secrets),
        "rules": sorted(d.rules),
    }


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_bundle_pulled_by_opa_decides_the_table(bundled) -> None:
    server, url, _ = bundled

    async def run() -> tuple[str, bool, list[tuple[str, dict[str, Any]]]]:
        engine = OpaEngine(url, timeout=2.0)
        await engine.start()
        try:
            answers = [
                (c["name"], _shape(await engine.decide(c["input"]))) for c in VECTORS["cases"]
            ]
            return engine.revision, engine.cacheable, answers
        finally:
            await engine.close()

    revision, cacheable, answers = asyncio.run(run())
    assert revision == f"opa:bundles:egress={server.source.bundle.revision}"
    assert cacheable
    expected = {c["name"]: c["expect"] for c in VECTORS["cases"]}
    assert [(n, a) for n, a in answers if a != expected[n]] == []


def test_data_edit_new_bundle_revision_no_stale_cached_answer(bundled) -> None:
    server, url, data_file = bundled

    async def run() -> None:
        cached = CachedEngine(OpaEngine(url, timeout=2.0, revision_interval=0.1))
        await cached.start()
        try:
            first = await cached.decide(ALLOWED["input"])
            again = await cached.decide(ALLOWED["input"])
            assert first.allow and again.allow and cached.hits == 1  # cached under the bundle
            before = cached.revision
            data = json.loads(data_file.read_text())
            data["egress"]["killed"][ALICE] = True
            data_file.write_text(json.dumps(data))
            await _until(lambda: cached.revision not in (before, ""))
            assert cached.revision == f"opa:bundles:egress={server.source.bundle.revision}"
            after = await cached.decide(ALLOWED["input"])
            assert (after.allow, after.reason) == (False, "agent_killed")
            assert cached.hits == 1 and cached.misses == 2
        finally:
            await cached.close()

    asyncio.run(run())


def test_ready_at_20000_agents_without_reading_data(tmp_path: Path) -> None:
    data_file = tmp_path / "fleet.json"
    data_file.write_text(json.dumps(fleet_data(VECTORS["data"], 20_000)))
    assert data_file.stat().st_size > 4_000_000
    server = BundleServer(REPO / "policies", data_file).start()
    opa = start_bundle_opa(server.url, tmp_path, opa_binary())
    relay = RecordingProxy(opa.url).start()

    async def run() -> tuple[str, bool, Any]:
        engine = OpaEngine(relay.url, timeout=0.25, revision_interval=0.1)
        await engine.start()
        try:
            revision, cacheable = engine.revision, engine.cacheable
            await asyncio.sleep(0.5)  # a few polls
            return revision, cacheable, await engine.decide(ALLOWED["input"])
        finally:
            await engine.close()

    try:
        revision, cacheable, decision = asyncio.run(run())
    finally:
        relay.stop()
        opa.stop()
        server.stop()
    assert revision == f"opa:bundles:egress={server.source.bundle.revision}" and cacheable
    assert decision.allow and decision.reason == "allowed"
    paths = relay.paths()
    assert paths.count(BUNDLES_PATH) >= 3  # start + polls
    assert set(paths) == {BUNDLES_PATH, "/v1/data/egress/decision"}
