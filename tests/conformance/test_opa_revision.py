"""The OPA engine's revision when OPA runs without bundles (files or the Data API), real bin/opa.

- ``data.egress.revision`` published with the data: it (plus a hash of the policies) is the
  revision; the decision cache is used, and a data change with a bumped revision is seen.
- neither bundles nor the revision document: nothing tells a data change apart, so the engine
  says so once on stderr and every decision asks OPA (a PUT of new data is obeyed at once).
- bundles configured but not activated yet: revision ``unknown`` (not ready), nothing cached.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from egress.policy.cache import CachedEngine
from egress.policy.opa import BUNDLES_PATH, NO_REVISION_WARNING, REVISION_DOC_PATH, OpaEngine
from egress.testing.net import free_port
from egress.testing.opa_fleet import RecordingProxy, start_bundle_opa
from tests.support.opa import opa_binary, start_opa

VECTORS = json.loads((Path(__file__).parent / "decision_vectors.json").read_text())
ALLOWED = next(c for c in VECTORS["cases"] if c["name"] == "github get repo")["input"]
ALICE = "alice@example.com/triage-bot"


def _kill_alice(url: str) -> None:
    r = httpx.put(f"{url}/v1/data/egress/killed", json={ALICE: True})
    assert r.status_code == 204


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_revision_document_keys_the_cache(tmp_path: Path) -> None:
    data = json.loads(json.dumps(VECTORS["data"]))
    data["egress"]["revision"] = "r1"
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    opa = start_opa(data_file)
    relay = RecordingProxy(opa.url).start()

    async def run() -> None:
        cached = CachedEngine(OpaEngine(relay.url, timeout=2.0, revision_interval=0.1))
        await cached.start()
        try:
            assert cached.revision.startswith("opa:data:r1:policies:")
            assert cached.engine.cacheable  # type: ignore[attr-defined]
            assert (await cached.decide(ALLOWED)).allow
            assert (await cached.decide(ALLOWED)).allow and cached.hits == 1
            _kill_alice(opa.url)
            httpx.put(f"{opa.url}{REVISION_DOC_PATH}", json="r2").raise_for_status()
            await _until(lambda: cached.revision.startswith("opa:data:r2:"))
            after = await cached.decide(ALLOWED)
            assert (after.allow, after.reason) == (False, "agent_killed")
        finally:
            await cached.close()

    try:
        asyncio.run(run())
    finally:
        relay.stop()
        opa.stop()
    assert "/v1/data" not in relay.paths()
    assert set(relay.paths()) == {
        BUNDLES_PATH,
        REVISION_DOC_PATH,
        "/v1/policies",
        "/v1/data/egress/decision",
    }


def test_no_revision_source_does_not_cache(tmp_path: Path, capfd: pytest.CaptureFixture[str]):
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(VECTORS["data"]))
    opa = start_opa(data_file)

    async def run() -> None:
        cached = CachedEngine(OpaEngine(opa.url, timeout=2.0, revision_interval=0.05))
        await cached.start()
        try:
            assert cached.revision.endswith(":data-unversioned")
            assert not cached.engine.cacheable  # type: ignore[attr-defined]
            assert (await cached.decide(ALLOWED)).allow
            assert (await cached.decide(ALLOWED)).allow
            assert (cached.hits, cached.misses) == (0, 2)
            _kill_alice(opa.url)  # the revision cannot see this; the next decision must
            after = await cached.decide(ALLOWED)
            assert (after.allow, after.reason) == (False, "agent_killed")
            await asyncio.sleep(0.3)  # several polls: still one warning
        finally:
            await cached.close()

    try:
        asyncio.run(run())
    finally:
        opa.stop()
    assert capfd.readouterr().err.count(NO_REVISION_WARNING) == 1


def test_bundles_not_activated_yet_are_not_ready(tmp_path: Path, capfd) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # no bundle service listens there
    opa = start_bundle_opa(nowhere, tmp_path, opa_binary(), activated=False)

    async def run() -> tuple[str, bool, bool]:
        cached = CachedEngine(OpaEngine(opa.url, timeout=2.0))
        await cached.start()
        try:
            denied = not (await cached.decide(ALLOWED)).allow
            return cached.revision, cached.engine.cacheable, denied  # type: ignore[attr-defined]
        finally:
            await cached.close()

    try:
        revision, cacheable, denied = asyncio.run(run())
    finally:
        opa.stop()
    assert revision == "opa:unknown:bundles-not-activated"
    assert not cacheable and denied
    assert NO_REVISION_WARNING not in capfd.readouterr().err
