"""Which client should ask OPA on the hot path? opa-python-client's async client vs a pooled httpx.

Starts the real OPA server (bin/opa) with the shipped policy and data, then for each client:
N sequential decisions (latency) and N decisions at concurrency C (throughput). Same input,
same server, clients interleaved, several rounds.

    .venv/bin/python bench/opa_clients.py [--n 2000] [--c 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import orjson
from opa_client.opa_async import AsyncOpaClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from egress.testing.opa import start_opa

INPUT = {
    "agent": {"user": "alice@example.com", "name": "triage-bot", "namespace": "ns"},
    "phase": "request",
    "request": {
        "scheme": "https",
        "host": "api.github.com",
        "port": 443,
        "method": "GET",
        "path": "/repos/o/r",
        "query": {},
        "headers": {},
    },
    "tls": {"sni": "api.github.com"},
    "connect": {"host": "api.github.com", "port": 443},
}


async def measure(one: Callable[[], Awaitable[None]], n: int, c: int) -> tuple[float, float]:
    """(ms per decision, sequential; decisions/s at concurrency c) for one client."""
    t = time.perf_counter()
    for _ in range(n):
        await one()
    seq = (time.perf_counter() - t) / n * 1000
    t = time.perf_counter()
    sem = asyncio.Semaphore(c)

    async def bounded() -> None:
        async with sem:
            await one()

    await asyncio.gather(*(bounded() for _ in range(n)))
    return seq, n / (time.perf_counter() - t)


async def run_httpx(port: int, n: int, c: int) -> tuple[float, float]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=c)) as client:
        url = f"http://127.0.0.1:{port}/v1/data/egress/decision"
        body = orjson.dumps({"input": INPUT})

        async def one() -> None:
            r = await client.post(url, content=body, headers={"content-type": "application/json"})
            assert orjson.loads(r.content)["result"]["allow"] is True

        return await measure(one, n, c)


async def run_opa_client(port: int, n: int, c: int) -> tuple[float, float]:
    async with AsyncOpaClient(host="127.0.0.1", port=port, retries=0) as client:

        async def one() -> None:
            r = await client.query_rule(INPUT, "egress/decision")
            assert r["result"]["allow"] is True

        return await measure(one, n, c)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--c", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    opa = start_opa(REPO / "policies/data.json")  # the real OPA, health-checked
    port = opa.port
    try:
        results: dict[str, list[tuple[float, float]]] = {
            "httpx-pooled": [],
            "opa-python-client": [],
        }
        for r in range(a.rounds):
            print(f"round {r + 1}/{a.rounds}", file=sys.stderr)
            results["httpx-pooled"].append(asyncio.run(run_httpx(port, a.n, a.c)))
            results["opa-python-client"].append(asyncio.run(run_opa_client(port, a.n, a.c)))
        print(
            f"| client | sequential ms/decision (median of {a.rounds}) | decisions/s at c={a.c} |"
        )
        print("|---|---|---|")
        for name, rows in results.items():
            print(
                f"| {name} | {statistics.median(x[0] for x in rows):.3f} | "
                f"{statistics.median(x[1] for x in rows):.0f} |"
            )
    finally:
        opa.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
