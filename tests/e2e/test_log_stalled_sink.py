"""``--decision-log -`` into a pipe nobody reads: the proxy keeps its head.

The decision stream is the process's stdout, a real pipe this test never reads. Once the pipe
buffer and the writer's queue are full, health checks still answer within a second (the event
loop never waits on the sink), ``/readyz`` says why it is not ready, and requests are refused
with 503 ``audit_unavailable`` without reaching the origin. When the reader starts reading, the
events come out as whole, chained lines.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import World
from tests.support.proxy import REPO

pytestmark = pytest.mark.e2e


def _start(world: World, state: Path, queue_max: int) -> tuple[subprocess.Popen, list[str], int]:
    state.mkdir(parents=True)
    for name in ("identities.json",):
        (state / name).write_bytes((world.state_dir / name).read_bytes())
    args = [sys.executable, "-m", "egress", "serve", "--listen", "127.0.0.1:0"]
    args += ["--state-dir", str(state), "--ca-dir", str(world.ca_dir)]
    args += ["--policy-dir", str(REPO / "policies"), "--data-file", str(world.data_file)]
    args += ["--upstream-ca", str(world.test_ca.cert_path), "--allow-cidr", "127.0.0.0/8"]
    args += ["--decision-log", "-", "--log-queue-max", str(queue_max)]
    args += ["--admin-listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=subprocess.PIPE,  # the decision stream: never read until the end
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            if line.strip() == "egress: ready":
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    assert ready.wait(30) and proc.poll() is None, "".join(lines)
    admin = next(x for x in lines if x.startswith("egress: admin listening on"))
    return proc, lines, int(admin.rsplit(":", 1)[1])


@pytest.mark.parametrize("queue_max", [5, 50])
def test_stalled_pipe_never_freezes_the_proxy(world: World, tmp_path: Path, queue_max: int) -> None:
    proc, lines, admin_port = _start(world, tmp_path / "state", queue_max)
    port = int(next(x for x in lines if x.startswith("egress: listening on")).rsplit(":", 1)[1])
    admin = f"http://127.0.0.1:{admin_port}"
    proxy = f"http://{world.alice.name}:{world.alice.token}@127.0.0.1:{port}"
    statuses: list[int] = []
    pad = "x" * 4000  # big events: the 64 KiB pipe buffer fills after a few dozen
    try:
        trust = ssl.create_default_context(cafile=str(world.ca_dir / "mitmproxy-ca-cert.pem"))
        with httpx.Client(proxy=proxy, verify=trust) as c:
            for i in range(400):
                r = c.get(f"{world.origin.url}/api/s{i}?{pad}", timeout=5)
                statuses.append(r.status_code)
                if r.status_code == 503:
                    break
            assert statuses[-1] == 503, "the proxy never noticed the stalled sink"
            assert r.json().get("reason") == "audit_unavailable" or "audit_unavailable" in r.text
            for probe in ("/healthz", "/readyz"):
                t0 = time.monotonic()
                h = httpx.get(admin + probe, timeout=1.0)
                assert time.monotonic() - t0 < 1.0
                assert h.status_code == (200 if probe == "/healthz" else 503), (probe, h.text)
            assert "stalled" in httpx.get(admin + "/readyz", timeout=1.0).text
            seen = len(world.origin.seen)
            refused = [
                c.get(f"{world.origin.url}/api/x{i}", timeout=5).status_code for i in range(3)
            ]
            assert refused == [503] * 3 and len(world.origin.seen) == seen
        # the reader comes back: what was queued comes out as whole, chained lines
        assert proc.stdout is not None
        proc.terminate()
        out = proc.stdout.read()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [orjson.loads(x) for x in out.splitlines()]
    assert len(events) >= statuses.count(200)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(not x.startswith(b"egress:") for x in out.splitlines()), "stdout is events only"
    assert any(
        n["event"] == "dropped" for e in events for n in e.get("log_note", {}).get("notes", [])
    ), "the drops while stalled are recorded in the stream"
