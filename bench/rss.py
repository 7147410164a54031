"""Memory after many requests: egress RSS after 10k and after 100k keep-alive requests.

Target: RSS after 100k <= 1.1x RSS after 10k (nothing grows per request). Uses the same nginx
origin and hey as bench/perf.py; current RSS (VmRSS), not the peak.

    .venv/bin/python bench/rss.py [--total 100000]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.perf import hey
from egress.testing.net import free_port, wait_port
from egress.testing.world import world


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--total", type=int, default=100_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="egress-rss-"))
    tmp.chmod(0o755)
    procs: list[subprocess.Popen] = []
    try:
        w = world(tmp, origin_ca="oca")  # origin CA + leaf, proxy CA, state dir
        test_ca, leaf = w.test_ca, w.leaf
        op = free_port()
        (tmp / "nginx.conf").write_text(
            f"user root; worker_processes 1; daemon off; pid {tmp}/nginx.pid; "
            f"error_log {tmp}/err; events {{ worker_connections 1024; }} http {{ access_log off;"
            f" keepalive_requests 10000000; server {{ listen 127.0.0.1:{op} ssl; "
            f"ssl_certificate {leaf.cert_path}; ssl_certificate_key {leaf.key_path}; "
            f'location / {{ return 200 "ok"; }} }} }}'
        )
        procs.append(
            subprocess.Popen(
                ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], stderr=subprocess.DEVNULL
            )
        )
        wait_port(op)
        token = w.agent("b@x.com", "bot")
        w.policy({"b@x.com/bot": [{"id": "b", "hosts": ["localhost"], "ports": [op]}]})
        pp = free_port()
        proxy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "egress"),
                "serve",
                "--listen",
                f"127.0.0.1:{pp}",
                "--ca-dir",
                str(tmp / "certs"),
                "--state-dir",
                str(tmp / "state"),
                "--policy-dir",
                str(REPO / "policies"),
                "--data-file",
                str(tmp / "data.json"),
                "--allow-cidr",
                "127.0.0.0/8",
                "--upstream-ca",
                str(test_ca.cert_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proxy)
        wait_port(pp)
        url, px = f"https://localhost:{op}/", f"http://bot:{token}@127.0.0.1:{pp}"
        hey(url, px, 10_000, 10)
        at_10k = rss_mib(proxy.pid)
        done = 10_000
        while done < a.total:
            n = min(30_000, a.total - done)
            hey(url, px, n, 10)
            done += n
            print(f"{done} requests: RSS {rss_mib(proxy.pid):.1f} MiB", file=sys.stderr)
        at_total = rss_mib(proxy.pid)
        print(
            f"| requests | egress RSS MiB |\n|---|---|\n| 10,000 | {at_10k:.1f} |\n"
            f"| {a.total:,} | {at_total:.1f} |\n\nratio {at_total / at_10k:.3f} "
            f"(target <= 1.10)"
        )
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
