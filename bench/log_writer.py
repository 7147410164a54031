"""Decision-log writer throughput: events/s through submit → serialize → hash chain → disk.

One process, one core, realistic events (~1 KB: the shape the proxy writes), for each fsync
policy. Target: >= 100k events/s with ``--log-fsync interval``.

    .venv/bin/python bench/log_writer.py [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from egress.audit.events import make_event
from egress.audit.writer import DecisionLogWriter

TEMPLATE = make_event(
    decision_id="7f0c2b8e-5d1e-4a8e-9d5c-0b6f1a2c3d4e",
    timestamp="2026-11-21T21:00:00.000000Z",
    kind="request",
    agent={"user": "alice@example.com", "name": "triage-bot", "namespace": "agent-triage-bot"},
    policy_input={
        "agent": {"user": "alice@example.com", "name": "triage-bot", "namespace": "ns"},
        "phase": "request",
        "request": {
            "scheme": "https",
            "host": "api.github.com",
            "port": 443,
            "method": "GET",
            "path": "/repos/org/repo/issues",
            "query": {"page": ["<masked>"]},
            "headers": {"accept": "application/json", "user-agent": "agent/1.0"},
        },
        "tls": {"sni": "api.github.com"},
        "connect": {"host": "api.github.com", "port": 443},
    },
    request={
        "method": "GET",
        "scheme": "https",
        "host": "api.github.com",
        "port": 443,
        "path": "/repos/org/repo/issues",
        "http_version": "HTTP/1.1",
    },
    result={
        "allow": True,
        "reason": "allowed",
        "rules": ["github-api"],
        "engine": "embedded",
        "revision": "sha256:791915dde1d784a4",
        "upstream": None,
        "mode": "enforce",
        "would_deny": False,
    },
    secrets=["github"],
    status=200,
    bytes_in=0,
    bytes_out=5321,
    decision_ms=0.012,
    total_ms=23.4,
    error=None,
    labels={"proxy_id": "egress-0", "version": "0.1.0"},
)


async def run(n: int, fsync: str, key: bytes | None = None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "decisions.log"
        # the whole burst fits the queue: this measures the writer, not the drop policy
        w = DecisionLogWriter(path, fsync=fsync, max_bytes=0, queue_max=n + 1, key=key)
        await w.start()
        events = [copy.copy(TEMPLATE) for _ in range(n)]
        started = time.perf_counter()
        for i, e in enumerate(events):
            w.submit(e)
            if i % 5000 == 4999:
                await asyncio.sleep(0)  # let the writer task run, as the proxy's loop would
        await w.close()
        elapsed = time.perf_counter() - started
        return n / elapsed, path.stat().st_size // n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    a = ap.parse_args()
    print(f"{a.events} events per run, one core\n")
    print("| fsync | chain | events/s | bytes/event |")
    print("|---|---|---|---|")
    for fsync in ("interval", "never", "always"):
        for key in (None, bytes(32)):
            n = a.events if fsync != "always" else min(a.events, 5000)
            rate, size = asyncio.run(run(n, fsync, key))
            print(
                f"| {fsync}{' (' + str(n) + ' events)' if n != a.events else ''} | "
                f"{'HMAC' if key else 'unkeyed'} | {rate:,.0f} | {size} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
