"""RSS per idle tunnel: 10,000 connections through the proxy, each CONNECT + TLS handshake
done, then idle.

One asyncio client opens the tunnels (``--parallel`` handshakes at a time), all with SNI
``localhost`` (one leaf, so the certificate cache is not what is measured), and holds them. The
proxy's RSS is read after a warm-up tunnel and with all tunnels open; the timeouts that would
close an idle tunnel are raised for the run, and the proxy's open descriptors are counted to
show the tunnels are still there when RSS is read. The open-file limit is raised first (the
proxy inherits it).

    .venv/bin/python bench/idle_tunnels.py [--tunnels 10000] [--parallel 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.tunnels import Rig, raise_nofile, rss_mib, start, tunnel

HOURS = "3600"


async def open_tunnel(
    rig: Rig, ctx: ssl.SSLContext, gate: asyncio.Semaphore
) -> asyncio.StreamWriter:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.proxy.port)
        writer.write(rig.connect_request())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(head.splitlines()[0].decode())
        await writer.start_tls(ctx, server_hostname="localhost")
        return writer


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def hold(rig: Rig, n: int, parallel: int) -> dict[str, float]:
    ctx = ssl.create_default_context(cafile=str(rig.proxy.ca_cert))
    pid = rig.proxy.proc.pid
    tunnel(rig, ctx, "localhost").close()  # warm-up: the leaf minted, code paths loaded
    await asyncio.sleep(1.0)
    base_rss, base_fds = rss_mib(pid), fds(pid)
    gate = asyncio.Semaphore(parallel)
    t0 = time.monotonic()
    writers = await asyncio.gather(*(open_tunnel(rig, ctx, gate) for _ in range(n)))
    opened_s = time.monotonic() - t0
    await asyncio.sleep(3.0)  # let the proxy settle (allocator, pending callbacks)
    rss, open_fds = rss_mib(pid), fds(pid)
    for w in writers:
        w.transport.abort()
    return {
        "base_rss": base_rss,
        "rss": rss,
        "fds": open_fds - base_fds,
        "open_s": opened_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tunnels", type=int, default=10_000)
    ap.add_argument("--parallel", type=int, default=50)
    a = ap.parse_args()
    limit = raise_nofile(a.tunnels * 2 + 1024)
    if limit < a.tunnels + 256:
        print(f"open-file limit {limit} is too low for {a.tunnels} tunnels", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="egress-idle-"))
    timeouts = ["--request-head-timeout", HOURS, "--idle-timeout", HOURS]
    rig = start(tmp, [*timeouts, "--tunnel-idle-timeout", HOURS])
    try:
        r = asyncio.run(hold(rig, a.tunnels, a.parallel))
    finally:
        rig.proxy.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    per = (r["rss"] - r["base_rss"]) * 1024 / a.tunnels
    print(f"{a.tunnels} idle tunnels (CONNECT + TLS done), opened in {r['open_s']:.0f} s\n")
    print(
        "| tunnels | proxy fds open (over baseline) | RSS before MiB | RSS with tunnels MiB "
        "| KiB per idle tunnel |"
    )
    print("|---|---|---|---|---|")
    print(f"| {a.tunnels} | {r['fds']:.0f} | {r['base_rss']:.0f} | {r['rss']:.0f} | {per:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
