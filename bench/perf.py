"""Side-by-side proxy benchmark: direct vs plain mitmdump vs the egress pipeline.

Everything on loopback: an nginx TLS origin (Debian nginx-light), `hey` as the load generator
(Debian), and in the same run, interleaved, several rounds of each variant:

  D        direct to nginx
  M0       plain mitmdump 12.2.3 (defaults: RSA CA; lazy connections, upstream verified)
  P        egress, embedded engine, decision log on, a placeholder swapped on every request
  P-opa    egress with the real OPA server (decision cache warm)
  P-w2     egress --workers 2 (SO_REUSEPORT)
  P-pass   egress with the destination marked "inspect: false" (TLS passthrough)
  squid    squid-openssl with ssl-bump (bump all), basic auth, no cache (bench/peers)
  goproxy  a Go MITM proxy on github.com/elazarl/goproxy, basic auth (bench/peers/goproxy)

A peer that is not installed (no squid, no bin/goproxy-bench) is skipped with the reason.

For each: median req/s at c=10 keep-alive, p50/p99 at c=1, new connections/s (keep-alive off,
c=10), proxy CPU seconds per request, peak RSS. Writes a markdown table to stdout and a PNG.

    .venv/bin/python bench/perf.py [--rounds 3] [--n 4000] [--png bench/perf.png]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.peers.launch import goproxy_missing, squid_missing, start_goproxy, start_squid
from egress.testing.net import free_port, wait_port
from egress.testing.world import world

PY = sys.executable
BIN = Path(sys.executable).parent


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen | None
    proxy: str | None  # value for hey -x
    pids: list[int]
    headers: list[str]


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, IndexError):
            pass
    return total


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def hey(
    url: str,
    proxy: str | None,
    n: int,
    c: int,
    *,
    keepalive: bool = True,
    headers: list[str] | None = None,
) -> dict[str, float]:
    cmd = ["hey", "-n", str(n), "-c", str(c)]
    if proxy:
        cmd += ["-x", proxy]
    if not keepalive:
        cmd.append("-disable-keepalive")
    for h in headers or []:
        cmd += ["-H", h]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=600).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    hey_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {
        int(p): float(s) * 1000
        for p, s in re.findall(r"(\d+)%% in ([\d.]+) secs".replace("%%", "%"), out)
    }
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out))
    return {
        "rps": rps,
        "p50": lat.get(50, float("nan")),
        "p99": lat.get(99, float("nan")),
        "ok": int(codes.get("200", 0)),
        "n": n,
        "hey_cpu_s": hey_cpu,
    }


PEERS = {"squid": (squid_missing, start_squid), "goproxy": (goproxy_missing, start_goproxy)}


def start_peers(
    wanted: list[str], tmp: Path, origin_ca: Path, spawn, procs: list[Proc]
) -> list[str]:
    """Start the wanted peer proxies (same origin, same client); returns the skip reasons."""
    skipped = []
    for name, (missing, start) in PEERS.items():
        if name not in wanted:
            continue
        reason = missing()
        if reason:
            print(f"skipping {name}: {reason}", file=sys.stderr)
            skipped.append(f"{name} skipped: {reason}")
            continue
        p, proxy = start(tmp, origin_ca, spawn)
        time.sleep(0.5)
        procs.append(Proc(name, p, proxy, [p.pid, *children(p.pid)], []))
    return skipped


def print_peer_ratios(med: dict[str, dict[str, float]], skipped: list[str]) -> None:
    """P against each reference, and c=1 latency each adds over direct (p50, ms)."""
    d, p = med.get("D"), med.get("P")
    print()
    for ref in ("M0", "squid", "goproxy"):
        r = med.get(ref)
        if not (p and r):
            continue
        line = (
            f"- P/{ref}: throughput {p['rps'] / r['rps']:.2f}, "
            f"new connections {p['conn_s'] / r['conn_s']:.2f}"
        )
        if d:
            line += (
                f"; c=1 p50 added over direct: P {p['p50'] - d['p50']:.2f} ms, "
                f"{ref} {r['p50'] - d['p50']:.2f} ms"
            )
        print(line)
    for note in skipped:
        print(f"- {note}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--png", default=str(REPO / "bench" / "perf.png"))
    ap.add_argument("--variants", default="D,M0,P,P-opa,P-w2,P-pass,squid,goproxy")
    a = ap.parse_args()
    wanted = a.variants.split(",")
    load0 = os.getloadavg()[0]  # other work on the machine skews absolutes, not ratios
    tmp = Path(tempfile.mkdtemp(prefix="egress-perf-"))
    os.chmod(tmp, 0o755)  # noqa: S103 (nginx workers read the config dir)
    # origin CA + leaf for nginx, the proxy CA in certs/, identities and secrets in state/
    w = world(tmp, origin_ca="perf-origin-ca")
    test_ca, leaf = w.test_ca, w.leaf
    origin_port = free_port()
    (tmp / "nginx.conf").write_text(f"""
user root; worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  server {{ listen 127.0.0.1:{origin_port} ssl; ssl_certificate {leaf.cert_path};
    ssl_certificate_key {leaf.key_path}; location / {{ return 200 "ok\\n"; }} }} }}
""")
    procs: list[Proc] = []
    started: list[subprocess.Popen] = []

    def spawn(cmd: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, **kw
        )
        started.append(p)
        return p

    try:
        nginx = spawn(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
        wait_port(origin_port)
        time.sleep(0.3)
        nginx_pids = [nginx.pid, *children(nginx.pid)]
        url = f"https://localhost:{origin_port}/"
        if "D" in wanted:
            procs.append(Proc("D", None, None, [], []))
        if "M0" in wanted:
            port = free_port()
            p = spawn(
                [
                    str(BIN / "mitmdump"),
                    "-q",
                    "--listen-host",
                    "127.0.0.1",
                    "--listen-port",
                    str(port),
                    "--set",
                    f"confdir={tmp / 'm0'}",
                    "--set",
                    "connection_strategy=lazy",
                    "--set",
                    f"ssl_verify_upstream_trusted_ca={test_ca.cert_path}",
                ]
            )
            wait_port(port)
            procs.append(Proc("M0", p, f"http://127.0.0.1:{port}", [p.pid], []))
        # egress: identities, secret, policy data
        token = w.agent("bench@example.com", "bot")
        ph = w.secret(
            "bench@example.com", "bot", "api", "real-secret-value-0123456789", ["localhost"]
        )
        rule = {
            "id": "bench",
            "hosts": ["localhost"],
            "ports": [origin_port],
            "methods": ["GET"],
            "secrets": ["api"],
        }
        w.policy({"bench@example.com/bot": [rule]})
        passthrough = {**rule, "inspect": False, "secrets": []}
        w.policy({"bench@example.com/bot": [passthrough]}, name="data-pass.json")
        base = [
            str(BIN / "egress"),
            "serve",
            "--ca-dir",
            str(tmp / "certs"),
            "--policy-dir",
            str(REPO / "policies"),
            "--allow-cidr",
            "127.0.0.0/8",
            "--upstream-ca",
            str(test_ca.cert_path),
        ]
        opa_port = free_port()
        variants = {
            "P": ["--data-file", str(tmp / "data.json")],
            "P-opa": [
                "--data-file",
                str(tmp / "data.json"),
                "--opa-url",
                f"http://127.0.0.1:{opa_port}",
            ],
            "P-w2": ["--data-file", str(tmp / "data.json"), "--workers", "2"],
            "P-pass": ["--data-file", str(tmp / "data-pass.json")],
        }
        if "P-opa" in wanted:
            spawn(
                [
                    str(REPO / "bin" / "opa"),
                    "run",
                    "--server",
                    "--addr",
                    f"127.0.0.1:{opa_port}",
                    "--log-level",
                    "error",
                    str(REPO / "policies" / "egress"),
                    str(tmp / "data.json"),
                ]
            )
            wait_port(opa_port)
        for name, extra in variants.items():
            if name not in wanted:
                continue
            port = free_port()
            state = tmp / f"state-{name}"
            shutil.copytree(tmp / "state", state)
            p = spawn([*base, "--listen", f"127.0.0.1:{port}", "--state-dir", str(state), *extra])
            wait_port(port)
            time.sleep(1.0)
            pids = [p.pid, *children(p.pid)]
            headers = [] if name == "P-pass" else [f"Authorization: Bearer {ph}"]
            procs.append(Proc(name, p, f"http://bot:{token}@127.0.0.1:{port}", pids, headers))
        skipped = start_peers(wanted, tmp, test_ca.cert_path, spawn, procs)

        results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for proc in procs:  # warm-up (certificates, caches, OPA decision cache)
            hey(url, proc.proxy, 300, 10, headers=proc.headers)
        for r in range(a.rounds):
            for proc in procs:
                print(f"round {r + 1}/{a.rounds}: {proc.name}", file=sys.stderr)
                cpu0, ng0 = cpu_seconds(proc.pids), cpu_seconds(nginx_pids)
                split0 = [cpu_seconds([pid]) for pid in proc.pids]
                ka = hey(url, proc.proxy, a.n, 10, headers=proc.headers)
                cpu1, ng1 = cpu_seconds(proc.pids), cpu_seconds(nginx_pids)
                split = [cpu_seconds([pid]) - c0 for pid, c0 in zip(proc.pids, split0, strict=True)]
                if len(split) > 1:  # how evenly the kernel spread connections over workers
                    print(f"  {proc.name} CPU s per process: {split}", file=sys.stderr)
                c1 = hey(url, proc.proxy, max(500, a.n // 8), 1, headers=proc.headers)
                nc = hey(
                    url, proc.proxy, max(300, a.n // 10), 10, keepalive=False, headers=proc.headers
                )
                bad = (ka["n"] - ka["ok"]) + (c1["n"] - c1["ok"]) + (nc["n"] - nc["ok"])
                results[proc.name]["rps"].append(ka["rps"])
                results[proc.name]["cpu_ms"].append((cpu1 - cpu0) / ka["n"] * 1000)
                # what the load generator and the origin burn on the same 2 cores
                load = ka["hey_cpu_s"] + (ng1 - ng0)
                results[proc.name]["load_ms"].append(load / ka["n"] * 1000)
                results[proc.name]["p50"].append(c1["p50"])
                results[proc.name]["p99"].append(c1["p99"])
                results[proc.name]["conn_s"].append(nc["rps"])
                results[proc.name]["errors"].append(bad)
        med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in results.items()}
        for proc in procs:
            med[proc.name]["rss"] = peak_rss_mib(proc.pids) if proc.pids else float("nan")
        print(
            f"nginx TLS origin on loopback; hey; {a.rounds} interleaved rounds, medians; "
            f"{a.n} requests per keep-alive run; 1-min load average {load0:.2f} at start, "
            f"{os.getloadavg()[0]:.2f} at end, {os.cpu_count()} CPUs\n"
        )
        print(
            "| variant | req/s c=10 keep-alive | xM0 | CPU ms/req | p50 ms c=1 | p99 ms c=1 "
            "| new conn/s | xM0 | peak RSS MiB | non-200 | hey+nginx CPU ms/req |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        m0 = med.get("M0")
        for name, m in med.items():
            rr = f"{m['rps'] / m0['rps']:.2f}" if m0 and name != "M0" else "-"
            cr = f"{m['conn_s'] / m0['conn_s']:.2f}" if m0 and name != "M0" else "-"
            print(
                f"| {name} | {m['rps']:.0f} | {rr} | {m['cpu_ms']:.2f} | {m['p50']:.2f} | "
                f"{m['p99']:.2f} | {m['conn_s']:.0f} | {cr} | {m['rss']:.0f} | "
                f"{m['errors']:.0f} | {m['load_ms']:.2f} |"
            )
        print_peer_ratios(med, skipped)
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            names = [n for n in med if n != "D"]  # direct is ~60x: it would flatten the rest
            m0v = med.get("M0")
            fig, axes = plt.subplots(1, 3, figsize=(13, 4))
            panels = [
                ("rps", "req/s (c=10 keep-alive) / M0", True),
                ("p50", "p50 ms at c=1", False),
                ("conn_s", "new connections/s / M0", True),
            ]
            for ax, (metric, title, ratio) in zip(axes, panels, strict=True):
                vals = [
                    med[n][metric] / m0v[metric] if ratio and m0v else med[n][metric] for n in names
                ]
                ax.bar(names, vals, color="#4c72b0")
                if ratio:
                    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
                ax.set_title(title)
                ax.tick_params(axis="x", rotation=30)
            fig.tight_layout()
            fig.savefig(a.png, dpi=90)
            print(f"\nplot: {a.png}", file=sys.stderr)
        except ImportError:
            print("matplotlib missing: no plot", file=sys.stderr)
    finally:
        for p in reversed(started):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
