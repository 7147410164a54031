from __future__ import annotations

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
    assert w.written == 100 and w.failed == 0


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
