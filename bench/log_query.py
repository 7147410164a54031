"""`egress logs query` over one million events: how long does a filtered query take?

Generates a log of N realistic events (varied agents, hosts, reasons, spread over 24 h),
rotated at 100 MB like the proxy does, then times: a filtered query (one agent, denied, one
host glob, last 2 h), --stats, and an ad-hoc SQL aggregate. Target: filtered query < 2 s.

    .venv/bin/python bench/log_query.py [--events 1000000] [--dir /tmp/egress-1m]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import datetime
import random
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.progress import Progress

from bench.log_writer import TEMPLATE
from egress.audit import query as q
from egress.audit.writer import DecisionLogWriter

HOSTS = [
    "api.github.com",
    "pypi.org",
    "files.pythonhosted.org",
    "api.openai.com",
    "registry.npmjs.org",
    "evil.example.com",
]
REASONS = ["allowed"] * 8 + ["path_not_allowed", "host_not_allowed", "method_not_allowed"]


async def generate(path: Path, n: int) -> None:
    rng = random.Random(42)
    w = DecisionLogWriter(path, fsync="never", max_bytes=100 * 1024 * 1024)
    await w.start()
    now = datetime.datetime.now(datetime.UTC)
    with Progress() as bar:
        task = bar.add_task("writing events", total=n)
        for i in range(n):
            e = copy.deepcopy(TEMPLATE) if i % 1000 == 0 else copy.copy(TEMPLATE)
            agent = f"agent-{rng.randrange(200)}"
            reason = rng.choice(REASONS)
            host = rng.choice(HOSTS)
            e["decision_id"] = str(uuid.UUID(int=rng.getrandbits(128)))
            e["timestamp"] = (now - datetime.timedelta(seconds=(n - i) * 86400 / n)).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            )
            e["agent"] = {
                "user": f"user{rng.randrange(50)}@example.com",
                "name": agent,
                "namespace": "ns",
            }
            e["request"] = {**TEMPLATE["request"], "host": host}
            e["result"] = {**TEMPLATE["result"], "allow": reason == "allowed", "reason": reason}
            e["status"] = 200 if reason == "allowed" else 403
            w.submit(e)
            if i % 5000 == 4999:
                bar.advance(task, 5000)
                await asyncio.sleep(0)
        await w.close()


def timed(label: str, fn) -> tuple[str, float, int]:
    started = time.perf_counter()
    rows = fn()
    return label, time.perf_counter() - started, len(rows)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/egress-1m")
    a = ap.parse_args()
    d = Path(a.dir)
    live = d / "decisions.log"
    if not live.exists():
        d.mkdir(parents=True, exist_ok=True)
        asyncio.run(generate(live, a.events))
    size = sum(f.stat().st_size for f in d.iterdir()) / 1e9
    results = []
    for _ in range(2):  # second round: warm OS cache
        con = q.connect([live])
        results = [
            timed(
                "filtered: one agent, denied, host glob, last 2h",
                lambda: q.select(
                    con,
                    q.Filters(agent="agent-7", decision="deny", host="*.github.com", since="2h"),
                    limit=1000,
                )[1],
            ),
            timed("--stats (all events)", lambda: q.stats(con, q.Filters())[1]),
            timed(
                "--sql count by reason",
                lambda: q.sql(con, "SELECT result.reason, count(*) FROM decisions GROUP BY 1")[1],
            ),
        ]
    print(f"{a.events:,} events, {size:.2f} GB in {len(list(d.iterdir()))} files\n")
    print("| query | seconds (warm) | rows |")
    print("|---|---|---|")
    for label, secs, rows in results:
        print(f"| {label} | {secs:.2f} | {rows} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
