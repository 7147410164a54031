"""The log is the truth, over real processes: rotation by ``mv`` + SIGHUP, ``rm`` of the log or
its directory while serving, a crash's torn tail at start, and two processes on one log.

Every test talks to a real ``egress serve`` subprocess through real sockets to the real TLS
origin, then reads the log files it left and runs the real verifier.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import orjson
import pytest

from egress.audit.files import expand
from egress.audit.verify import verify_chains
from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess, proxy_for

pytestmark = pytest.mark.e2e


def _events(files: list[Path]) -> dict[str, dict]:
    out = {}
    for f in files:
        if f.exists():
            for line in f.read_bytes().splitlines():
                e = orjson.loads(line)
                out[e["decision_id"]] = e
    return out


def _ask(c: httpx.Client, world: World, path: str, answered: list[tuple[str, int]]) -> int:
    r = c.get(f"{world.origin.url}{path}")
    answered.append((r.headers["x-egress-decision-id"], r.status_code))
    return r.status_code


def _admin_port(p: ProxyProcess) -> int:
    line = next(x for x in p.output if x.startswith("egress: admin listening on"))
    return int(line.rsplit(":", 1)[1])


def _logged_proxy(world: World, tmp_path: Path, *extra: str) -> tuple[ProxyProcess, Path]:
    logs = tmp_path / "logs"
    log = logs / "decisions.log"
    p = proxy_for(world, tmp_path, "--decision-log", str(log), *extra, secrets=False)
    return p, log


@pytest.mark.parametrize("rounds", [1, 3])
def test_mv_then_sighup_rotates_without_losing_an_event(
    world: World, tmp_path: Path, rounds: int
) -> None:
    p, log = _logged_proxy(world, tmp_path)
    answered: list[tuple[str, int]] = []
    moved = []
    try:
        with http_client(p, world.alice) as c:
            for r in range(rounds):
                assert [_ask(c, world, f"/api/r{r}-{i}", answered) for i in range(5)] == [200] * 5
                target = log.with_name(f"decisions.log.{r + 1}")
                log.rename(target)  # what logrotate does, then its postrotate: kill -HUP
                moved.append(target)
                p.proc.send_signal(signal.SIGHUP)
                assert [_ask(c, world, f"/api/a{r}-{i}", answered) for i in range(5)] == [200] * 5
            time.sleep(0.5)
            assert p.proc.poll() is None, "SIGHUP must not stop the proxy"
    finally:
        assert p.stop() == 0  # still the graceful path: drained, sealed
    events = _events([*moved, log])
    assert {d for d, _ in answered} <= set(events), "an answered request has no event"
    assert log.exists() and log.stat().st_size > 0, "events continue in a new file at the path"
    [report] = verify_chains([log.parent])
    assert report.ok, report.problems
    assert any("reopened after sighup" in n for n in report.notes)


def test_rm_of_the_log_reopens_it_and_every_answer_has_its_event(
    world: World, tmp_path: Path
) -> None:
    p, log = _logged_proxy(world, tmp_path)
    answered: list[tuple[str, int]] = []
    try:
        with http_client(p, world.alice) as c:
            assert [_ask(c, world, f"/api/pre{i}", answered) for i in range(4)] == [200] * 4
            log.unlink()  # events now go to a deleted inode until the writer notices
            after = [_ask(c, world, f"/api/post{i}", answered) for i in range(8)]
            time.sleep(0.6)
            after += [_ask(c, world, f"/api/late{i}", answered) for i in range(4)]
    finally:
        assert p.stop() == 0
    assert set(after) == {200}
    events = _events([log])
    post = [d for d, _ in answered[4:]]
    assert set(post) <= set(events), "answers after the rm must be in the reopened log"
    [note] = [e["log_note"] for e in events.values() if "log_note" in e]
    assert note["notes"][0]["event"] == "reopened" and note["notes"][0]["reason"] == "deleted"


@pytest.mark.parametrize("policy", ["deny", "allow"])
def test_rm_of_the_log_dir_goes_unready_until_it_is_back(
    world: World, tmp_path: Path, policy: str
) -> None:
    """Nowhere to reopen: not ready; ``deny`` refuses (503 audit_unavailable, nothing
    forwarded), ``allow`` keeps serving. Either way every answer's event is held and written
    once the directory is back."""
    p, log = _logged_proxy(
        world, tmp_path, "--admin-listen", "127.0.0.1:0", "--on-log-failure", policy
    )
    admin = f"http://127.0.0.1:{_admin_port(p)}"
    answered: list[tuple[str, int]] = []
    try:
        with http_client(p, world.alice) as c:
            assert _ask(c, world, "/api/ok", answered) == 200
            shutil.rmtree(log.parent)  # nowhere to reopen: the log cannot be written
            deadline = time.monotonic() + 5
            while httpx.get(admin + "/readyz", timeout=1).status_code != 503:
                assert time.monotonic() < deadline, "still ready with the log gone"
                _ask(c, world, "/api/gone", answered)
                time.sleep(0.05)
            assert "decision log" in httpx.get(admin + "/readyz", timeout=1).text
            seen = len(world.origin.seen)
            during = [_ask(c, world, f"/api/during{i}", answered) for i in range(3)]
            if policy == "deny":
                assert during == [503] * 3 and len(world.origin.seen) == seen
            else:
                assert during == [200] * 3 and len(world.origin.seen) == seen + 3
            log.parent.mkdir()
            deadline = time.monotonic() + 10
            while httpx.get(admin + "/readyz", timeout=1).status_code != 200:
                assert time.monotonic() < deadline, "did not recover once the dir was back"
                time.sleep(0.1)
            assert _ask(c, world, "/api/back", answered) == 200
    finally:
        assert p.stop() == 0
    events = _events([log])
    # everything after the rm (the first answer may have been confirmed, then deleted)
    missing = [d for d, _ in answered[1:] if d not in events]
    assert missing == []
    for decision_id, status in answered:
        if status == 503:
            assert events[decision_id]["result"]["reason"] == "audit_unavailable"


@pytest.mark.parametrize("tail", [b'{"schema":1,"decision_id":"half', b"{", b"\x00\x00\x00"])
def test_torn_tail_is_cut_at_start_and_reported(world: World, tmp_path: Path, tail: bytes) -> None:
    p, log = _logged_proxy(world, tmp_path)
    with http_client(p, world.alice) as c:
        assert [c.get(f"{world.origin.url}/api/t{i}").status_code for i in range(3)] == [200] * 3
    assert p.stop() == 0
    whole = log.read_bytes()
    log.write_bytes(whole + tail)  # what a crash mid-write leaves
    q = proxy_for(world, tmp_path, "--decision-log", str(log), secrets=False)
    with http_client(q, world.alice) as c:
        assert c.get(f"{world.origin.url}/api/after").status_code == 200
    assert q.stop() == 0
    data = log.read_bytes()
    assert data.startswith(whole) and data[len(whole) :].startswith(b'{"schema":1,')
    lines = data.splitlines()
    assert len(lines) == 4
    note = orjson.loads(lines[3])["log_note"]["notes"][0]
    assert note["event"] == "torn_tail_truncated" and note["bytes"] == len(tail)
    [report] = verify_chains([log])
    assert report.ok, report.problems
    assert any(f"partial line of {len(tail)} bytes" in n for n in report.notes)


def _serve(world: World, state: Path, *extra: str) -> subprocess.CompletedProcess:
    from tests.support.proxy import REPO

    args = ["--listen", "127.0.0.1:0", "--state-dir", str(state), "--ca-dir", str(world.ca_dir)]
    args += ["--policy-dir", str(REPO / "policies"), "--data-file", str(world.data_file)]
    import sys

    return subprocess.run(
        [sys.executable, "-m", "egress", "serve", *args, *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


@pytest.mark.parametrize(
    "shape",
    ["same state dir", "same state dir, own logs", "same log, own state dirs"],
)
def test_second_serve_on_shared_files_fails_at_start(
    world: World, tmp_path: Path, shape: str
) -> None:
    p = proxy_for(world, tmp_path, secrets=False)
    try:
        with http_client(p, world.alice) as c:
            assert c.get(f"{world.origin.url}/api/first").status_code == 200
        assert len(p.wait_events(1)) == 1  # written (by the writer thread) before the snapshot
        before = p.log_path.read_bytes()
        trust = p.state_dir / "upstream-trust.pem"
        trust_before = trust.read_bytes()
        if shape == "same state dir":
            done = _serve(world, p.state_dir)
        elif shape == "same state dir, own logs":
            done = _serve(world, p.state_dir, "--decision-log", str(tmp_path / "other.log"))
        else:
            other = tmp_path / "other-state"
            done = _serve(world, other, "--decision-log", str(p.log_path))
        assert done.returncode == 2, done.stderr
        assert "error[state_locked]" in done.stderr and "Traceback" not in done.stderr
        assert p.log_path.read_bytes() == before and trust.read_bytes() == trust_before
        with http_client(p, world.alice) as c:  # the first one is untouched and serving
            assert c.get(f"{world.origin.url}/api/still").status_code == 200
    finally:
        assert p.stop() == 0
    [report] = verify_chains([p.log_path])
    assert report.ok, report.problems


def test_workers_rotate_on_sighup_and_each_chain_verifies_alone(
    world: World, tmp_path: Path
) -> None:
    """Two workers and a gateway-style log in one directory: three chains, each whole, none
    mistaken for another (seq 0 appears in each, which one merged chain would call tampering)."""
    import asyncio

    from egress.audit import DecisionLogWriter

    p, log = _logged_proxy(world, tmp_path, "--workers", "2")
    answered: list[tuple[str, int]] = []
    try:
        for i in range(16):  # new connections: the kernel spreads them over both workers
            with http_client(p, world.alice) as c:
                assert _ask(c, world, f"/api/w{i}", answered) == 200
        for w in ("w0", "w1"):
            src = log.with_name(f"decisions.log.{w}")
            src.rename(log.with_name(f"decisions.log.{w}-20261123"))  # logrotate dateext
        p.proc.send_signal(signal.SIGHUP)  # to the supervisor: forwarded to each worker
        time.sleep(0.5)
        for i in range(16):
            with http_client(p, world.alice) as c:
                assert _ask(c, world, f"/api/after{i}", answered) == 200
        assert p.proc.poll() is None
    finally:
        assert p.stop() == 0

    async def gateway_log() -> None:
        w = DecisionLogWriter(log.with_name("gateway-decisions.log"))
        await w.start()
        for i in range(3):
            w.submit({"n": i})
        await w.close()

    asyncio.run(gateway_log())
    reports = verify_chains([log.parent])
    names = sorted(Path(r.chain).name for r in reports)
    assert names == ["decisions.log.w0", "decisions.log.w1", "gateway-decisions.log"]
    for r in reports:
        assert r.ok, (r.chain, r.problems)
    events = _events(expand([log]))  # decisions.log brings its workers' families
    assert {d for d, _ in answered} <= set(events)
    workers = [r for r in reports if ".w" in r.chain]
    assert all(any("reopened after" in n for n in r.notes) for r in workers)
