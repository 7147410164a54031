"""The writer against real files, a real pipe and a real HTTP collector: loss of the file
(rm, mv, replaced) with no signal at all, a full queue, a second writer, keys and anchors."""

from __future__ import annotations

import asyncio
import http.server
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from egress.audit.anchor import read_anchors
from egress.audit.chain import check_mac, load_key, record_ok
from egress.audit.verify import verify_chains
from egress.audit.writer import DecisionLogWriter
from egress.errors import ConfigError

KEY = bytes(range(32))


async def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def _loss(kind: str, log: Path) -> None:
    if kind == "rm":
        log.unlink()
    elif kind == "mv":
        log.rename(log.with_name("decisions.log.1"))
    elif kind == "mv, new file created":
        log.rename(log.with_name("decisions.log.1"))
        log.write_bytes(b"")  # logrotate's `create`


@pytest.mark.parametrize("kind", ["rm", "mv", "mv, new file created"])
async def test_lost_file_is_noticed_and_reopened_without_a_signal(
    tmp_path: Path, kind: str
) -> None:
    log = tmp_path / "decisions.log"
    w = DecisionLogWriter(log, key=KEY, check_interval=0.05)
    await w.start()
    for i in range(5):
        w.submit({"n": i})
    await _until(lambda: w.written == 5)
    await asyncio.sleep(0.2)  # a check passes: these five are confirmed in the file
    _loss(kind, log)
    for i in range(5, 10):  # written to the old file before the check notices
        w.submit({"n": i})
    await _until(lambda: w.reopens == 1)
    for i in range(10, 15):
        w.submit({"n": i})
    await w.close()
    files = [log] + ([log.with_name("decisions.log.1")] if kind != "rm" else [])
    got = sorted(orjson.loads(x)["n"] for f in files for x in f.read_bytes().splitlines())
    # rm: the five confirmed before it went with the file; every later one is here
    assert got == (list(range(5, 15)) if kind == "rm" else list(range(15)))
    [report] = verify_chains([log], key=KEY)
    expected = "deleted" if kind == "rm" else ("renamed" if kind == "mv" else "replaced")
    assert any(f"reopened after {expected}" in n for n in report.notes)
    if kind != "rm":
        assert report.ok, report.problems
    else:  # the deleted head is gone, and verify says so
        assert {p.kind for p in report.problems} == {"head_missing"}


async def test_full_queue_drops_counts_goes_unhealthy_and_records_it(tmp_path: Path) -> None:
    r, wfd = os.pipe()  # a reader that never reads
    w = DecisionLogWriter(None, stdout_fd=wfd, queue_max=3)
    await w.start()
    pad = "x" * 8192
    for i in range(40):
        w.submit({"n": i, "pad": pad})
        await asyncio.sleep(0.005)
    assert not w.healthy and w.dropped > 0 and "stalled" in w.problem()
    got = bytearray()

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    await _until(lambda: w.healthy)
    w.submit({"n": "after"})
    await w.close()
    os.close(wfd)
    t.join(5)
    events = [orjson.loads(x) for x in bytes(got).splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    notes = [n for e in events for n in e.get("log_note", {}).get("notes", [])]
    assert sum(n["count"] for n in notes if n["event"] == "dropped") == w.dropped
    assert len(events) + w.dropped == 41


async def test_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "decisions.log"
    w = DecisionLogWriter(log)
    await w.start()
    other = DecisionLogWriter(log)
    with pytest.raises(ConfigError) as e:
        other.open()
    assert e.value.reason == "state_locked"
    await w.close()
    other.open()  # once the first is gone, the file is free
    await other.start()
    await other.close()


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.received.append(orjson.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/anchors"
    server.shutdown()


@pytest.mark.parametrize("target", ["file", "url"])
async def test_anchors_are_signed_heads_shipped_off_the_log_dir(
    tmp_path: Path, collector: str, target: str
) -> None:
    log = tmp_path / "logs" / "decisions.log"
    dest = str(tmp_path / "elsewhere.jsonl") if target == "file" else collector
    w = DecisionLogWriter(log, key=KEY, anchor=dest, anchor_interval=0.05, fsync_interval=0.05)
    await w.start()
    for i in range(20):
        w.submit({"n": i})
        await asyncio.sleep(0.01)
    await w.close()
    records = read_anchors(Path(dest)) if target == "file" else list(_Collector.received)
    assert records[0]["reason"] == "start" and records[0]["seq"] == -1
    assert records[-1]["reason"] == "close" and records[-1]["seq"] == 19
    assert all(record_ok(KEY, r) for r in records)
    lines = log.read_bytes().splitlines()
    assert records[-1]["hash"] == __import__("hashlib").sha256(lines[-1]).hexdigest()
    assert all(check_mac(KEY, x) for x in lines)
    assert not all(check_mac(bytes(32), x) for x in lines)  # another key does not verify


def test_log_key_is_generated_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "log.key"
    key = load_key(path, create=True)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(path, create=False) == key
    path.write_text("zz-not-hex")
    with pytest.raises(ValueError, match="hex"):
        load_key(path, create=False)
