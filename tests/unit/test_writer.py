from __future__ import annotations

import asyncio
import hashlib

import orjson

from egress.audit.writer import GENESIS, DecisionLogWriter


def _chain_ok(lines: list[bytes], start: str = GENESIS) -> bool:
    prev = start
    for line in lines:
        if orjson.loads(line)["prev_hash"] != prev:
            return False
        prev = hashlib.sha256(line).hexdigest()
    return True


async def test_batches_drain_on_close_and_chain(tmp_path) -> None:
    path = tmp_path / "d.log"
    w = DecisionLogWriter(path, batch_max=7)
    await w.start()
    for i in range(100):
        w.submit({"n": i})
    await w.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x)["n"] for x in lines] == list(range(100))
    assert _chain_ok(lines)
    assert w.written == 100 and w.write_errors == 0 and w.healthy


async def test_reopen_continues_the_chain(tmp_path) -> None:
    path = tmp_path / "d.log"
    for batch in range(3):
        w = DecisionLogWriter(path)
        await w.start()
        for i in range(4):
            w.submit({"batch": batch, "n": i})
        await w.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 12 and _chain_ok(lines)


async def test_edit_breaks_the_chain(tmp_path) -> None:
    path = tmp_path / "d.log"
    w = DecisionLogWriter(path)
    await w.start()
    for i in range(5):
        w.submit({"n": i, "result": {"allow": False}})
    await w.close()
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b'"allow":false', b'"allow":true')
    assert not _chain_ok(lines)
    assert not _chain_ok([lines[0], lines[2], lines[1], lines[3], lines[4]])


async def test_failing_sink_holds_events_and_recovers(tmp_path, monkeypatch) -> None:
    import os

    path = tmp_path / "d.log"
    w = DecisionLogWriter(path, retry_interval=0.01)
    await w.start()
    real_write = os.write
    failing = {"on": True}

    def flaky(fd: int, data) -> int:
        if failing["on"] and fd == w._fd:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", flaky)
    for i in range(10):
        w.submit({"n": i})
    for _ in range(50):
        await asyncio.sleep(0.01)
        if w.write_errors:
            break
    assert not w.healthy and w.pending() == 10 and w.write_errors >= 1
    assert path.read_bytes() == b""
    failing["on"] = False
    for _ in range(100):
        await asyncio.sleep(0.01)
        if w.healthy:
            break
    assert w.healthy and w.written == 10
    await w.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x)["n"] for x in lines] == list(range(10)) and _chain_ok(lines)


async def test_partial_writes_never_tear_lines(tmp_path, monkeypatch) -> None:
    import os

    path = tmp_path / "d.log"
    w = DecisionLogWriter(path, retry_interval=0.01)
    await w.start()
    real_write = os.write
    calls = {"n": 0}

    def stingy(fd: int, data) -> int:
        if fd != w._fd:
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] % 2:
            return real_write(fd, bytes(data[:7]))  # short write
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "write", stingy)
    for i in range(20):
        w.submit({"n": i, "pad": "x" * 30})
    for _ in range(400):
        await asyncio.sleep(0.005)
        if w.healthy and w.written == 20:
            break
    monkeypatch.setattr(os, "write", real_write)
    await w.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x)["n"] for x in lines] == list(range(20)) and _chain_ok(lines)
