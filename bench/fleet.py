"""Fleet scale: what one decision costs, and what other agents feel, as the number of agents grows.

For each size (agents with 20 rules each, ``bench/fleet_data.py``), in a fresh child process so
memory is that size's alone, capped in time (a size over the cap is skipped with the reason):

- uncached decision p50/p99 on the embedded engine (``EmbeddedEngine``) and on a real bin/opa
  server loaded with the same policy and data (``OpaEngine``);
- throughput through ``CachedEngine`` with 10% cache misses (16 concurrent callers);
- the stall other agents see: on one asyncio loop, an "other agent" task making cached
  decisions every 1 ms (each call timed) and a 1 ms ticker (loop lag), first alone (baseline),
  then next to an agent that only misses the cache, then across a reload;
- reload: agent 0's rule edited in the data file (atomic replace), time until a decision for
  agent 0 shows the change;
- RSS: this process (engine), the data-cutter child, the OPA server;
- OPA readiness: ``OpaEngine.start()`` + first decision (after OPA itself is up).

    .venv/bin/python bench/fleet.py --agents 1,100,1000,10000,50000 --png bench/fleet.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fleet_data import agent_id, probe_input, request_for, write_data
from egress.policy import build_input
from egress.policy.cache import CachedEngine
from egress.policy.data_cutter import shared_cutter
from egress.policy.embedded import EmbeddedEngine
from egress.policy.opa import OpaEngine
from egress.testing.net import free_port
from egress.testing.opa import OpaServer, default_opa_binary

UNCACHED = 2000  # uncached decisions timed per engine
THROUGHPUT = 4000  # decisions in the 10%-miss throughput run
CONCURRENCY = 16
PHASE_S = 4.0  # seconds of each stall phase


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def rss_mib(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def sample_agents(n: int, k: int, rng: random.Random) -> list[int]:
    return [rng.randrange(n) for _ in range(k)]


async def uncached(engine: Any, n: int, seed: int) -> dict[str, float]:
    """p50/p99 ms of decisions with unique inputs, agents drawn across the fleet."""
    rng = random.Random(seed)
    lat, evals, allowed = [], [], 0
    for seq in range(UNCACHED):
        inp = request_for(rng.randrange(n), rng, seq)
        t = time.perf_counter()
        d = await engine.decide(inp)
        lat.append((time.perf_counter() - t) * 1000)
        allowed += d.allow
        evals.append(float(d.extra.get("eval_ms", "nan")))
        if seq == 20 and statistics.median(lat) > 200:
            break  # seconds per decision: the percentiles are clear already
    return {
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
        "eval_p99": pct(evals, 0.99),  # inside the engine: Wasm (embedded) or HTTP (OPA)
        "n": len(lat),
        "allowed": allowed,
    }


async def throughput(engine: Any, n: int, seed: int) -> dict[str, float]:
    """Decisions/s through ``CachedEngine`` when 10% of requests miss the cache."""
    rng = random.Random(seed)
    cached = CachedEngine(engine, max_entries=100_000)
    hot = [request_for(a, rng, 10_000_000 + k) for k, a in enumerate(sample_agents(n, 300, rng))]
    for inp in hot:
        await cached.decide(inp)
    todo = [
        request_for(rng.randrange(n), rng, seq) if rng.random() < 0.1 else rng.choice(hot)
        for seq in range(THROUGHPUT)
    ]
    hits0, misses0 = cached.hits, cached.misses
    it = iter(todo)

    async def caller() -> None:
        for inp in it:
            await cached.decide(inp)

    t = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - t
    misses = cached.misses - misses0
    return {"rps": len(todo) / elapsed, "miss": misses / (cached.hits - hits0 + misses)}


class Watch:
    """The other agent's cached calls and the loop's lag, on the bench's one event loop."""

    def __init__(self, cached: CachedEngine, hot: list[dict[str, Any]]) -> None:
        self.cached, self.hot = cached, hot
        self.calls: list[float] = []
        self.lags: list[float] = []
        self.running = True

    async def other_agent(self) -> None:
        i = 0
        while self.running:
            await asyncio.sleep(0.001)
            t = time.perf_counter()
            await self.cached.decide(self.hot[i % len(self.hot)])
            self.calls.append((time.perf_counter() - t) * 1000)
            i += 1

    async def ticker(self) -> None:
        while self.running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, (time.perf_counter() - t) * 1000 - 1.0))

    def summary(self) -> dict[str, float]:
        return {
            "call_p99": pct(self.calls, 0.99),
            "call_max": max(self.calls, default=float("nan")),
            "lag_p99": pct(self.lags, 0.99),
            "lag_max": max(self.lags, default=float("nan")),
        }


async def watched(cached: CachedEngine, hot: list[dict[str, Any]], load: Any) -> dict[str, Any]:
    """Run ``load()`` (a coroutine function, or None for the baseline) next to a Watch."""
    w = Watch(cached, hot)
    tasks = [asyncio.create_task(w.other_agent()), asyncio.create_task(w.ticker())]
    extra = await (load() if load is not None else asyncio.sleep(PHASE_S))
    w.running = False
    await asyncio.gather(*tasks)
    return {**w.summary(), **(extra or {})}


async def stalls(engine: EmbeddedEngine, n: int, data_file: Path) -> dict[str, Any]:
    """Baseline, one agent missing the cache, one agent's rule edited: what others see."""
    rng = random.Random(5)
    cached = CachedEngine(engine, max_entries=100_000)
    other = (n - 1) if n > 1 else 0
    hot = [request_for(other, rng, 20_000_000 + k) for k in range(20)]
    for inp in hot:
        await cached.decide(inp)
    missing = max(0, n // 2 - 1)

    async def misses() -> dict[str, Any]:
        count, stop = 0, time.perf_counter() + PHASE_S
        while time.perf_counter() < stop:
            await cached.decide(request_for(missing, rng, 30_000_000 + count))
            count += 1
        return {"misses_per_s": count / PHASE_S}

    async def reload() -> dict[str, Any]:
        return await reload_probe(cached, data_file)

    return {
        "baseline": await watched(cached, hot, None),
        "miss": await watched(cached, hot, misses),
        "reload": await watched(cached, hot, reload),
    }


async def reload_probe(cached: CachedEngine, data_file: Path) -> dict[str, Any]:
    """Agent 0's rule edited by a separate publisher process (as a real data publisher is:
    its 100 MB of string work must not count as the proxy's stall), the file atomically
    replaced; seconds from the replace until a decision for agent 0 shows the change."""
    await asyncio.sleep(0.3)
    before = await cached.decide(probe_input(-1))
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PUBLISH, str(REPO), str(data_file), stdout=subprocess.PIPE
    )
    replaced_at, _ = await publisher.communicate()
    t = time.perf_counter() - (time.time() - float(replaced_at))
    seq, visible = 0, float("nan")
    while time.perf_counter() - t < 120:
        seq += 1
        if (await cached.decide(probe_input(seq))).allow:
            visible = time.perf_counter() - t
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    return {"reload_s": visible, "before_allowed": before.allow}


# The publisher: read, edit agent 0's probe rule, write beside, atomic replace, print when.
PUBLISH = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from bench.fleet_data import edit_probe
data = Path(sys.argv[2])
tmp = data.with_suffix(".new")
tmp.write_bytes(edit_probe(data.read_bytes()))
os.replace(tmp, data)
print(time.time())
"""


async def opa_part(n: int, data_file: Path, cap: float) -> dict[str, Any]:
    """The real OPA server with the same policy and data: load, readiness, decisions, RSS."""
    t = time.perf_counter()
    opa = OpaServer(default_opa_binary(), free_port(), REPO / "policies" / "egress", data_file)
    opa.start(timeout=cap)
    out: dict[str, Any] = {"opa_load_s": time.perf_counter() - t}
    try:
        engine = OpaEngine(opa.url, timeout=10.0)
        t = time.perf_counter()
        await engine.start()
        first = await engine.decide(request_for(0, random.Random(1), 0))
        out["opa_ready_s"] = time.perf_counter() - t
        out["opa_first_reason"] = first.reason
        out["opa_uncached"] = await uncached(engine, n, seed=3)
        out["opa_throughput"] = await throughput(engine, n, seed=4)
        assert opa.proc is not None
        out["opa_rss"] = rss_mib(opa.proc.pid)
        await engine.close()
    finally:
        opa.stop()
    return out


async def one_size(n: int, work: Path, workers: int, cap: float, opa: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"agents": n, "rss_start": rss_mib()}
    data_file = work / "data.json"
    t = time.perf_counter()
    write_data(data_file, n)
    out["data_mb"] = data_file.stat().st_size / 1e6
    out["gen_s"] = time.perf_counter() - t
    t = time.perf_counter()
    engine = EmbeddedEngine(REPO / "policies", data_file, workers=workers)
    out["emb_load_s"] = time.perf_counter() - t
    check = await engine.decide(
        build_input(
            agent_id(0),
            phase="request",
            scheme="https",
            host="probe.fleet.example",
            port=443,
            method="GET",
            path="/fleet-probe/v0/x",
        )
    )
    assert check.allow, f"probe rule not allowed: {check.reason}"
    out["load_before"] = os.getloadavg()[0]  # other work on the host shows in the tails
    out["emb_uncached"] = await uncached(engine, n, seed=1)
    out["load_after"] = os.getloadavg()[0]
    out["emb_throughput"] = await throughput(engine, n, seed=2)
    out["stalls"] = await stalls(engine, n, data_file)
    out["rss_engine"] = rss_mib()
    cutter = shared_cutter()._proc
    out["rss_cutter"] = rss_mib(cutter.pid) if cutter is not None else 0.0
    await engine.close()
    shared_cutter().close()
    if opa:
        out.update(await opa_part(n, data_file, cap))
    return out


def child(n: int, out_file: Path, workers: int, cap: float, opa: bool) -> None:
    with tempfile.TemporaryDirectory(prefix=f"fleet{n}-") as tmp:
        result = asyncio.run(one_size(n, Path(tmp), workers, cap, opa))
    out_file.write_text(json.dumps(result))


def run_size(n: int, a: argparse.Namespace) -> dict[str, Any] | str:
    """One size in a child process (own session, so the cap kills its OPA and cutter too)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--one", str(n), "--out", out.name]
        cmd += ["--workers", str(a.workers), "--cap", str(a.cap)] + ([] if a.opa else ["--no-opa"])
        proc = subprocess.Popen(cmd, start_new_session=True)
        try:
            code = proc.wait(a.cap)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return f"skipped: over the {a.cap:.0f} s cap for one size"
        if code != 0:
            return f"skipped: the run exited with {code}"
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--agents", default="1,100,1000,10000,50000", help="sizes, comma-separated")
    ap.add_argument("--workers", type=int, default=2, help="embedded --policy-workers")
    ap.add_argument("--cap", type=float, default=900, help="seconds allowed per size")
    ap.add_argument("--no-opa", dest="opa", action="store_false", help="embedded engine only")
    ap.add_argument("--png", type=Path, default=None, help="write the curve here")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one is not None:
        child(a.one, a.out, a.workers, a.cap, a.opa)
        return
    from bench.fleet_report import plot, tables

    results: dict[int, dict[str, Any] | str] = {}
    for n in [int(x) for x in a.agents.split(",")]:
        print(f"# {n} agents ...", file=sys.stderr, flush=True)
        results[n] = run_size(n, a)
        if isinstance(results[n], str):
            print(f"# {n} agents: {results[n]}", file=sys.stderr, flush=True)
    print(tables(results))
    if a.png is not None:
        plot(results, a.png)


if __name__ == "__main__":
    main()
