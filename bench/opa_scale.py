"""OPA engine at fleet scale: time to ready and revision-poll cost, old way vs new, real bin/opa.

Old (main before issue 15): the revision was a hash of ``GET /v1/policies`` + ``GET /v1/data``
every second, within the OPA timeout (0.25 s by default). New: the bundle manifest revision
(``GET /v1/data/system/bundles``) when OPA pulls the bundle from ``egress policy bundle serve``;
or ``data.egress.revision`` + ``GET /v1/policies`` when OPA is loaded from files.

    .venv/bin/python -m bench.opa_scale --agents 20000 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from egress.policy.bundle_server import BundleServer
from egress.policy.opa import OpaEngine
from egress.testing.opa import start_opa
from egress.testing.opa_fleet import fleet_data, start_bundle_opa

REPO = Path(__file__).resolve().parents[1]
BASE = json.loads((REPO / "tests" / "conformance" / "decision_vectors.json").read_text())["data"]


def old_poll(url: str, rounds: int) -> tuple[float, int]:
    """Median seconds and bytes of the old revision poll (a long timeout, to see its cost)."""
    times, size = [], 0
    with httpx.Client(base_url=url, timeout=120) as c:
        for _ in range(rounds):
            t = time.perf_counter()
            size = len(c.get("/v1/policies").content) + len(c.get("/v1/data").content)
            times.append(time.perf_counter() - t)
    return statistics.median(times), size


async def new_engine(url: str, rounds: int) -> tuple[float, float, str]:
    """(seconds to start = ready, median seconds per revision poll, revision) of the engine."""
    engine = OpaEngine(url, timeout=0.25, revision_interval=3600)
    t = time.perf_counter()
    await engine.start()
    ready = time.perf_counter() - t
    polls = []
    for _ in range(rounds):
        t = time.perf_counter()
        await engine._refresh_revision()
        polls.append(time.perf_counter() - t)
    revision = engine.revision
    await engine.close()
    return ready, statistics.median(polls), revision


def measure(agents: int, rounds: int) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = fleet_data(BASE, agents)
        data_file = work / "data.json"
        data_file.write_text(json.dumps(data))
        mb = data_file.stat().st_size / 1e6
        server = BundleServer(REPO / "policies", data_file).start()
        t = time.perf_counter()
        opa = start_bundle_opa(server.url, work, timeout=600)
        activated = time.perf_counter() - t
        try:
            old_s, old_bytes = old_poll(opa.url, rounds)
            ready, poll, rev = asyncio.run(new_engine(opa.url, rounds * 4))
        finally:
            opa.stop()
            server.stop()
        rows.append(
            f"| {agents} | {mb:.1f} MB | bundle | {activated:.2f} s | "
            f"{old_s * 1000:.0f} ms, {old_bytes / 1e6:.1f} MB "
            f"({'ready' if old_s < 0.25 else 'never ready'}) | "
            f"{ready * 1000:.1f} ms | {poll * 1000:.2f} ms | `{rev[:40]}` |"
        )
        data["egress"]["revision"] = "r1"
        data_file.write_text(json.dumps(data))
        t = time.perf_counter()
        files_opa = start_opa(data_file, REPO / "policies" / "egress")
        loaded = time.perf_counter() - t
        try:
            old_s, old_bytes = old_poll(files_opa.url, rounds)
            ready, poll, rev = asyncio.run(new_engine(files_opa.url, rounds * 4))
        finally:
            files_opa.stop()
        rows.append(
            f"| {agents} | {mb:.1f} MB | files + data.egress.revision | {loaded:.2f} s | "
            f"{old_s * 1000:.0f} ms, {old_bytes / 1e6:.1f} MB "
            f"({'ready' if old_s < 0.25 else 'never ready'}) | "
            f"{ready * 1000:.1f} ms | {poll * 1000:.2f} ms | `{rev[:40]}` |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--agents", type=int, nargs="+", default=[20_000, 50_000])
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print(
        "| agents | data | OPA loads | OPA ready (load) | old poll: policies+data "
        "(at 0.25 s timeout) | new: engine ready | new poll | revision |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in a.agents:
        for row in measure(n, a.rounds):
            print(row, flush=True)


if __name__ == "__main__":
    main()
