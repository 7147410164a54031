"""Decision cache: hit rate and decision latency, embedded engine and real OPA, cached or not.

Traffic model: agents repeat themselves. Requests are drawn from D distinct decision inputs
(hosts x methods x paths of the shipped example policy and a few denied ones) with a Zipf-like
skew (s=1.1), seeded so runs are comparable. Each variant sees the same sequence; the report is
hit rate and per-decision latency percentiles measured around ``engine.decide``.

    .venv/bin/python bench/decision_cache.py [--n 20000] [--distinct 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from egress.identity.model import Identity
from egress.policy import build_input
from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine
from egress.policy.opa import OpaEngine
from egress.testing.opa import start_opa

ALICE = Identity("alice@example.com", "triage-bot", "ns")
HOSTS = [
    "api.github.com",
    "pypi.org",
    "files.pythonhosted.org",
    "api.openai.com",
    "evil.example.com",
]
METHODS = ["GET", "POST", "HEAD", "DELETE"]


def inputs(distinct: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(distinct):
        host = HOSTS[i % len(HOSTS)]
        out.append(
            build_input(
                ALICE,
                phase="request",
                scheme="https",
                host=host,
                port=443,
                method=rng.choice(METHODS),
                path=f"/repos/org/repo{i}/issues"
                if "github" in host
                else "/v1/chat/completions"
                if "openai" in host
                else f"/simple/pkg{i}/",
            )
        )
    return out


def sequence(n: int, distinct: int, seed: int = 11) -> list[int]:
    rng = random.Random(seed)
    weights = [1 / (k + 1) ** 1.1 for k in range(distinct)]
    return rng.choices(range(distinct), weights=weights, k=n)


async def measure(engine, seq: list[int], pool: list[dict]) -> list[float]:
    lat = []
    for i in seq:
        t = time.perf_counter()
        await engine.decide(pool[i])
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def run(n: int, distinct: int) -> None:
    pool, seq = inputs(distinct), sequence(n, distinct)
    opa = start_opa(REPO / "policies/data.json")  # the real OPA, health-checked
    port = opa.port
    # the revision document lets the OPA engine cache (without it, it asks OPA every time)
    httpx.put(f"{opa.url}/v1/data/egress/revision", json="bench").raise_for_status()
    try:
        variants = {
            "embedded, no cache": EmbeddedEngine(REPO / "policies", REPO / "policies/data.json"),
            "embedded + cache": CachedEngine(
                EmbeddedEngine(REPO / "policies", REPO / "policies/data.json")
            ),
            "opa, no cache": OpaEngine(f"http://127.0.0.1:{port}", timeout=2.0),
            "opa + cache": CachedEngine(OpaEngine(f"http://127.0.0.1:{port}", timeout=2.0)),
        }
        print(f"n={n} decisions over {distinct} distinct inputs (Zipf s=1.1)\n")
        print("| variant | hit rate | p50 ms | p99 ms | mean ms |")
        print("|---|---|---|---|---|")
        for name, engine in variants.items():
            print(f"running {name}", file=sys.stderr)
            lat = await measure(engine, seq, pool)
            hits = getattr(engine, "hits", 0)
            misses = getattr(engine, "misses", 0)
            rate = f"{hits / (hits + misses):.1%}" if hits + misses else "-"
            print(
                f"| {name} | {rate} | {pct(lat, 50):.3f} | {pct(lat, 99):.3f} | "
                f"{statistics.fmean(lat):.3f} |"
            )
            await engine.close()
    finally:
        opa.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--distinct", type=int, default=300)
    a = ap.parse_args()
    asyncio.run(run(a.n, a.distinct))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
