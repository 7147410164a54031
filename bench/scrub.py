"""What the agent-wide scrub costs per answer, on answers that hold no secret (the usual case).

Runs the real ``ScrubResponses`` addon (both hooks, headers and body) on mitmproxy flows,
with a real local secret store holding 1 or 20 secrets for the agent, for bodies of 1 KiB and
1 MiB: JSON, plain text and gzip-compressed JSON, buffered; plus a streamed 1 MiB event stream
in 16 KiB chunks. Also one answer that does echo a secret (JSON ``\\uXXXX``-escaped), to show
what a hit costs. Prints microseconds per answer (median of rounds).

    .venv/bin/python bench/scrub.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mitmproxy.test import tflow, tutils

from egress.identity.model import Identity
from egress.proxy import flowstate
from egress.proxy.addons.scrub import ScrubResponses
from egress.secrets.local import LocalSecretStore

USER, AGENT = "bench@example.com", "bench-bot"
KIB = 1024


def json_body(size: int) -> bytes:
    item = {"id": 1, "url": "https://example.com/a%20b/c?d=e&f=g", "text": "caf\u00e9 line\nnext"}
    doc = json.dumps([item] * (size // 80 + 1)).encode()
    return doc[:size]


def text_body(size: int) -> bytes:
    return (
        b"lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n" * (size // 60 + 1)
    )[:size]


def make_store(root: Path, n: int) -> tuple[LocalSecretStore, list[str]]:
    store = LocalSecretStore.open(root / f"s{n}.enc", root / f"s{n}.key", create=True)
    values = []
    for i in range(n):
        value = f"ghs_{i:02d}BenchSecretValue+with/Some=Chars{i:04d}xyz"
        store.put(USER, AGENT, f"s{i}", value, ["example.com"])
        values.append(value)
    return store, values


def flow_for(body: bytes, headers: dict[str, str]) -> tflow.HTTPFlow:
    f = tflow.tflow()
    f.metadata[flowstate.IDENTITY] = Identity(USER, AGENT, "")
    hdrs = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    f.response = tutils.tresp(
        content=b"", headers=[(k.encode(), v.encode()) for k, v in hdrs.items()]
    )
    f.response.raw_content = body
    return f


async def per_answer(addon: ScrubResponses, make: Callable[[], tflow.HTTPFlow], n: int) -> float:
    """Microseconds per answer through both hooks (flows built outside the timing)."""
    flows = [make() for _ in range(n)]
    t0 = time.perf_counter()
    for f in flows:
        await addon.responseheaders(f)
        if f.response.stream:  # streamed: 16 KiB chunks through the stream function
            body = f.response.raw_content or b""
            for i in range(0, len(body), 16 * KIB):
                f.response.stream(body[i : i + 16 * KIB])
            f.response.stream(b"")
        await addon.response(f)
    return (time.perf_counter() - t0) / n * 1e6


async def main_async(rounds: int) -> list[tuple[str, int, int, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_secrets in (0, 1, 20):
            store, values = make_store(Path(tmp), n_secrets)
            addon = ScrubResponses(store)
            for size in (KIB, KIB * KIB):
                n = 2000 if size == KIB else 10
                cases: dict[str, Callable[[], tflow.HTTPFlow]] = {
                    "json": lambda size=size: flow_for(json_body(size), {}),
                    "text": lambda size=size: flow_for(text_body(size), {}),
                    "json gzip": lambda size=size: flow_for(
                        gzip.compress(json_body(size)), {"Content-Encoding": "gzip"}
                    ),
                    "event-stream": lambda size=size: flow_for(
                        text_body(size), {"Content-Type": "text/event-stream"}
                    ),
                }
                if values:  # an answer that does hold a secret: what a hit costs
                    cases["json, secret echoed \\u-escaped"] = lambda size=size, v=values[0]: (
                        flow_for(
                            json_body(size - 300)
                            + json.dumps(v).encode().replace(b"B", b"\\u0042"),
                            {},
                        )
                    )
                for name, make in cases.items():
                    times = [await per_answer(addon, make, n) for _ in range(rounds)]
                    rows.append((name, size, n_secrets, statistics.median(times)))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    rows = asyncio.run(main_async(a.rounds))
    print("| answer | body | secrets | µs per answer |")
    print("|---|---|---|---|")
    for name, size, n, us in rows:
        print(f"| {name} | {'1 KiB' if size == KIB else '1 MiB'} | {n} | {us:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
