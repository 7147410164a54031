"""``egress serve --workers N``: N proxy processes sharing one listen port (SO_REUSEPORT).

mitmproxy runs on one core. The supervisor picks the port (a free one for ``:0``), starts N
``egress serve`` children with ``--worker-index i`` and ``--reuse-port``, and the kernel spreads
new connections across them. Each worker writes its own decision log (``NAME.w<i>``, which
``egress logs`` reads like any other file) and labels its events ``proxy_id=<id>-w<i>``. The
supervisor forwards SIGTERM/SIGINT (and SIGHUP, which reopens logs) and exits with the first
non-zero child status; a worker that dies is reported, not silently replaced.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def without(argv: list[str], flags: set[str]) -> list[str]:
    """argv minus the given flags and their values (both `--f v` and `--f=v` forms)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.split("=", 1)[0] in flags:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def supervise(argv: list[str], workers: int, host: str, port: int, log: Path | None) -> int:
    if port == 0:
        port = _free_port(host)
    children: list[subprocess.Popen[bytes]] = []
    base = without(
        argv, {"--listen", "--workers", "--decision-log", "--worker-index", "--reuse-port"}
    )
    for i in range(workers):
        own = base if i == 0 else without(base, {"--admin-listen"})  # one admin port: worker 0
        args = [
            sys.executable,
            "-m",
            "egress",
            *own,
            "--listen",
            f"{host}:{port}",
            "--workers",
            "1",
            "--worker-index",
            str(i),
            "--reuse-port",
            "true",
        ]
        if log is not None:
            args += ["--decision-log", str(log.with_name(f"{log.name}.w{i}"))]
        children.append(subprocess.Popen(args))
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    def reopen(signum: int, _frame: object) -> None:  # SIGHUP (logrotate): each worker reopens
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reopen)
    status = 0
    while any(c.poll() is None for c in children):
        for i, c in enumerate(children):
            rc = c.poll()
            if rc is not None and rc != 0 and not stopping.is_set():
                print(
                    f"egress: worker {i} exited with {rc}; stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                status = status or rc
                forward(signal.SIGTERM, None)
        time.sleep(0.2)
    for c in children:
        status = status or (c.returncode or 0)
    return status
