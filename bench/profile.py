"""Where the proxy's time goes under load: py-spy samples ``egress serve`` while ``hey`` sends
keep-alive requests (c=10) through it to an nginx TLS origin, as bench/perf.py's P variant.

Printed: the share of samples in mitmproxy, egress, the TLS/socket layer and the rest (by the
innermost frame of a known package), the functions with the largest inclusive share, and the
shares of the two items mitm_patches.py removes. ``--unpatched`` runs with
EGRESS_MITM_PATCHES=off to compare.

    .venv/bin/python bench/profile.py [--n 20000] [--rate 250] [--unpatched] [--top 25]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.perf import hey
from egress.testing.net import free_port, wait_port
from egress.testing.proxy import start_proxy
from egress.testing.world import world

PYSPY = Path(sys.executable).parent / "py-spy"
WATCH = {
    "MessageData.__post_init__": "__post_init__ (mitmproxy/http.py",
    "addon dispatch (safecall)": "safecall (mitmproxy/addonmanager.py",
}


def nginx(tmp: Path, cert: Path, key: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (tmp / "nginx.conf").write_text(f"""
user root; worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert};
    ssl_certificate_key {key}; location / {{ return 200 "ok\\n"; }} }} }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    wait_port(port)
    return proc, port


def summarize(stacks: Path, top: int) -> None:
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    layer: collections.Counter[str] = collections.Counter()
    for line in stacks.read_text().splitlines():
        frames_s, _, count_s = line.rpartition(" ")
        count = int(count_s)
        frames = frames_s.split(";")
        total += count
        for f in set(frames):
            inclusive[f] += count
        layer[_layer(frames)] += count
    print(f"{total} samples\n\n| layer (innermost known frame) | share |\n|---|---|")
    for name, c in layer.most_common():
        print(f"| {name} | {100 * c / total:.1f}% |")
    print("\n| watched | inclusive share |\n|---|---|")
    for label, needle in WATCH.items():
        c = sum(v for f, v in inclusive.items() if needle in f)
        print(f"| {label} | {100 * c / total:.1f}% |")
    print(f"\n| top {top} functions (inclusive) | share |\n|---|---|")
    for f, c in inclusive.most_common(top):
        print(f"| `{f[:110]}` | {100 * c / total:.1f}% |")


def _layer(frames: list[str]) -> str:
    for f in reversed(frames):
        for key in ("egress/", "mitmproxy/", "asyncio/", "ssl.py", "OpenSSL/", "cryptography/"):
            if key in f:
                return key.removesuffix("/").removesuffix(".py")
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--unpatched", action="store_true")
    a = ap.parse_args()
    if a.unpatched:
        os.environ["EGRESS_MITM_PATCHES"] = "off"
    tmp = Path(tempfile.mkdtemp(prefix="egress-profile-"))
    tmp.chmod(0o755)
    w = world(tmp, origin_ca="profile-origin-ca")
    origin, port = nginx(tmp, w.leaf.cert_path, w.leaf.key_path)
    token = w.agent("bench@example.com", "bot")
    ph = w.secret("bench@example.com", "bot", "api", "real-secret-value-0123456789", ["localhost"])
    rule = {"id": "b", "hosts": ["localhost"], "ports": [port], "methods": ["GET"]}
    data = w.policy({"bench@example.com/bot": [{**rule, "secrets": ["api"]}]})
    proxy = None
    try:  # nginx is stopped even when the proxy does not start
        proxy = start_proxy(
            state_dir=tmp / "state",
            ca_dir=w.ca_dir,
            data_file=data,
            upstream_ca=w.test_ca.cert_path,
        )
        url, via = f"https://localhost:{port}/", proxy.url("bot", token)
        headers = [f"Authorization: Bearer {ph}"]
        hey(url, via, 500, 10, headers=headers)  # warm-up
        out = tmp / "stacks.txt"
        pid, rate = str(proxy.proc.pid), str(a.rate)
        spy = subprocess.Popen(
            [
                str(PYSPY),
                "record",
                "-p",
                pid,
                "-r",
                rate,
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        r = hey(url, via, a.n, 10, headers=headers)
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(60)
        print(
            f"{a.n} requests, c=10 keep-alive, {r['rps']:.0f} req/s while sampled "
            f"({'unpatched' if a.unpatched else 'patched'})\n"
        )
        summarize(out, a.top)
    finally:
        if proxy is not None:
            proxy.stop()
        origin.terminate()
        origin.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
