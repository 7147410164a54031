"""Soak: hold >= 200 concurrent tunnels through the full egress pipeline and watch the proxy.

Everything stays on loopback: a TLS origin of our own on 127.0.0.1, the proxy as a subprocess
(embedded engine, decision log on), clients as asyncio tunnels. Bounded by request count and
time. Reports the proxy's RSS and open fds after the tunnels opened, after every round of load,
and after the tunnels closed, plus latency percentiles of the first and last round.

    .venv/bin/python bench/soak.py [--tunnels 200] [--rounds 10] [--per-round 5] [--max-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.origin import start_origin
from egress.testing.proxy import basic, start_proxy
from egress.testing.world import world


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else float("nan")


async def open_tunnel(port: int, target: str, auth: str, ctx, host: str):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        f"Proxy-Authorization: {auth}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    sock.setblocking(False)
    return await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname=host)


async def request(reader, writer, host: str, path: str) -> float:
    started = time.perf_counter()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return (time.perf_counter() - started) * 1000


async def soak(a: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="egress-soak-"))
    w = world(tmp, origin_ca="soak-ca")  # origin CA + leaf, proxy CA, state dir
    test_ca = w.test_ca
    origin = start_origin(w.leaf.cert_path, w.leaf.key_path)
    token = w.agent("soak@example.com", "bot")
    rule = {"id": "soak", "hosts": ["localhost"], "ports": [origin.port], "methods": ["GET"]}
    w.policy({"soak@example.com/bot": [rule]})
    proxy = start_proxy(
        state_dir=tmp / "state",
        ca_dir=tmp / "certs",
        data_file=tmp / "data.json",
        upstream_ca=test_ca.cert_path,
    )
    pid = proxy.proc.pid
    host = f"localhost:{origin.port}"
    ctx = proxy.client_context()
    rows: list[tuple[str, int, int]] = [("idle", rss_kib(pid), fds(pid))]
    deadline = time.monotonic() + a.max_seconds
    try:
        print(f"opening {a.tunnels} tunnels...", file=sys.stderr)
        tunnels = await asyncio.gather(
            *(
                open_tunnel(proxy.port, host, basic("bot", token), ctx, "localhost")
                for _ in range(a.tunnels)
            )
        )
        rows.append((f"{a.tunnels} tunnels open", rss_kib(pid), fds(pid)))
        latencies: list[list[float]] = []
        for r in range(a.rounds):
            if time.monotonic() > deadline:
                print("time bound reached", file=sys.stderr)
                break
            lat: list[float] = []

            async def worker(t, i: int, lat: list[float] = lat) -> None:
                for k in range(a.per_round):
                    lat.append(await request(t[0], t[1], host, f"/api/soak/{i}/{k}"))

            await asyncio.gather(*(worker(t, i) for i, t in enumerate(tunnels)))
            latencies.append(lat)
            rows.append((f"after round {r + 1} ({len(lat)} requests)", rss_kib(pid), fds(pid)))
            print(f"round {r + 1}/{a.rounds}: p50 {pct(lat, 50):.1f} ms", file=sys.stderr)
        for _, w in tunnels:
            w.close()
        await asyncio.sleep(1.0)
        rows.append(("tunnels closed", rss_kib(pid), fds(pid)))
    finally:
        proxy.stop()
        origin.close()
    total = sum(len(x) for x in latencies)
    print(
        f"{a.tunnels} concurrent tunnels, {total} requests in {len(latencies)} rounds "
        f"(keep-alive, full pipeline, decision log on)\n"
    )
    print("| point | proxy RSS MiB | proxy open fds |")
    print("|---|---|---|")
    for name, rss, nfd in rows:
        print(f"| {name} | {rss / 1024:.1f} | {nfd} |")
    first, last = latencies[0], latencies[-1]
    print("\n| round | p50 ms | p95 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    for name, lat in (("first", first), ("last", last)):
        print(
            f"| {name} | {pct(lat, 50):.1f} | {pct(lat, 95):.1f} | {pct(lat, 99):.1f} | "
            f"{statistics.fmean(lat):.1f} |"
        )
    events = len(proxy.events())
    print(f"\ndecision events written: {events} (requests answered: {total})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tunnels", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(soak(ap.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
