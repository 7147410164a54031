"""Run ``egress serve`` (or another egress command) as a real subprocess on a free port.

Shared by tests/ and bench/: start the process, wait for its ``ready`` line, read the decision
log it writes, stop it.
"""

from __future__ import annotations

import base64
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]


class DecisionEvents:
    """Reading the decision log a proxy or gateway process writes (``log_path``)."""

    log_path: Path

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        # a live log may end in a line the writer thread is still writing: complete lines only
        data = self.log_path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]
        return [orjson.loads(line) for line in data.splitlines() if line]

    def wait_events(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if len(events) >= n:
                return events
            time.sleep(0.05)
        return self.events()

    def event_for(self, decision_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e["decision_id"] == decision_id:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no decision event {decision_id}")


@dataclass
class ProxyProcess(DecisionEvents):
    proc: subprocess.Popen[str]
    port: int
    state_dir: Path
    ca_cert: Path
    log_path: Path
    output: list[str] = field(default_factory=list)

    def url(self, agent: str, token: str) -> str:
        return f"http://{agent}:{token}@127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))


def start_proxy(
    *,
    state_dir: Path,
    ca_dir: Path,
    data_file: Path,
    upstream_ca: Path | None,
    extra_args: list[str] | None = None,
    timeout: float = 30.0,
    allow_loopback: bool = True,
) -> ProxyProcess:
    log_path = state_dir / "decisions.log"
    args = [
        sys.executable,
        "-m",
        "egress",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(state_dir),
        "--ca-dir",
        str(ca_dir),
        "--policy-dir",
        str(REPO / "policies"),
        "--data-file",
        str(data_file),
        "--decision-log",
        str(log_path),
    ]
    if upstream_ca is not None:
        args += ["--upstream-ca", str(upstream_ca)]
    # the test origins live on loopback, which egress refuses to dial by default
    if allow_loopback:
        args += ["--allow-cidr", "127.0.0.0/8,::1/128"]
    # every test client comes from 127.0.0.1: a per-source cap would make one test's slow
    # sockets another test's 429 (tests/security/test_unauth_flood.py sets it explicitly)
    args += ["--max-conns-unauthenticated-per-source", "0"]
    args += extra_args or []
    proc, output, port = spawn_until_ready(args, "egress", timeout)
    return ProxyProcess(proc, port, state_dir, ca_dir / "mitmproxy-ca-cert.pem", log_path, output)


def spawn_until_ready(
    args: list[str], prefix: str, timeout: float = 30.0
) -> tuple[subprocess.Popen[str], list[str], int]:
    """Start an egress command and wait for ``<prefix>: ready``; returns the process, the
    output it keeps collecting, and the port of its first ``<prefix>: listening on`` line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output: list[str] = []
    port_box: list[int] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith(f"{prefix}: listening on ") and not port_box:
                port_box.append(int(line.rsplit(":", 1)[1]))
            if line.strip() == f"{prefix}: ready":
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or not port_box or proc.poll() is not None:
        proc.kill()
        raise RuntimeError(f"{prefix} did not start:\n" + "".join(output))
    return proc, output, port_box[0]


def basic(agent: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{agent}:{token}".encode()).decode()
