"""Leaf certificate cache at 10,000 distinct SNI hosts: stays at --cert-cache-size, RSS bounded.

Each host is a CONNECT to 127.0.0.1 and a TLS handshake with SNI ``h<i>.certs.test`` (no request
follows, so the proxy never dials upstream: connections are lazy). The proxy mints one leaf per
new name. Printed: RSS every 1,000 hosts, and which leaves are still cached at the end, told by
serial number (a cached host gets the same certificate again, an evicted one a new serial).

    .venv/bin/python bench/cert_cache.py [--hosts 10000] [--sizes 1000,100000] [--threads 4]
"""

from __future__ import annotations

import argparse
import shutil
import ssl
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.tunnels import Rig, rss_mib, start, tunnel


def serial(rig: Rig, ctx: ssl.SSLContext, host: str) -> int:
    with tunnel(rig, ctx, host) as s:
        der = s.getpeercert(binary_form=True)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def run(size: int, hosts: int, threads: int) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="egress-certs-"))
    rig = start(tmp, ["--cert-cache-size", str(size)])
    try:
        ctx = ssl.create_default_context(cafile=str(rig.proxy.ca_cert))
        pid = rig.proxy.proc.pid
        first = serial(rig, ctx, "h0.certs.test")
        curve = [(0, rss_mib(pid))]
        with ThreadPoolExecutor(threads) as pool:
            for start_i in range(1, hosts, 1000):
                names = [f"h{i}.certs.test" for i in range(start_i, min(hosts, start_i + 1000))]
                list(pool.map(lambda n: serial(rig, ctx, n), names))
                curve.append((start_i + len(names), rss_mib(pid)))
                print(
                    f"  size {size}: {curve[-1][0]} hosts, RSS {curve[-1][1]:.1f} MiB",
                    file=sys.stderr,
                )
        last_name = f"h{hosts - 1}.certs.test"
        last = serial(rig, ctx, last_name)
        return {
            "size": size,
            "curve": curve,
            "first_evicted": serial(rig, ctx, "h0.certs.test") != first,
            "last_cached": serial(rig, ctx, last_name) == last,
        }
    finally:
        rig.proxy.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    results = [run(int(s), a.hosts, a.threads) for s in a.sizes.split(",")]
    marks = [c[0] for c in results[0]["curve"]]  # type: ignore[index]
    print(f"{a.hosts} distinct SNI hosts, one TLS handshake each; proxy RSS (MiB) after n hosts\n")
    print(
        "| --cert-cache-size | "
        + " | ".join(str(m) for m in marks)
        + " | h0 evicted | last cached |"
    )
    print("|---" * (len(marks) + 3) + "|")
    for r in results:
        rss = " | ".join(f"{v:.0f}" for _, v in r["curve"])  # type: ignore[union-attr]
        print(f"| {r['size']} | {rss} | {r['first_evicted']} | {r['last_cached']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
