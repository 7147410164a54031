"""The decision log's disk fills up under a live proxy: no request goes unlogged, none is lost.

A real tmpfs of 256 KiB holds the log (mounting needs root, as CI has). When it is full the
writer keeps the events it accepted, the proxy refuses new requests with 503
``audit_unavailable``, and once space returns every held event is written, in order, with
an intact hash chain: the log then holds exactly one event per answer the client saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import proxy_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    return filler


def test_full_disk_refuses_then_recovers_without_losing_events(
    world: World, tmp_path, small_disk: Path
) -> None:
    log = small_disk / "decisions.log"
    p = proxy_for(world, tmp_path, "--decision-log", str(log), secrets=False)
    answered: list[tuple[str, int]] = []

    def one(c: httpx.Client, path: str) -> int:
        r = c.get(f"{world.origin.url}{path}")
        answered.append((r.headers["x-egress-decision-id"], r.status_code))
        return r.status_code

    try:
        with http_client(p, world.alice) as c:
            assert [one(c, f"/api/ok{i}") for i in range(3)] == [200, 200, 200]
            time.sleep(0.3)
            filler = _fill(small_disk)
            statuses = []
            for i in range(40):  # the first write failure flips the proxy to refusing
                statuses.append(one(c, f"/api/full{i}"))
                if statuses[-1] == 503:
                    break
                time.sleep(0.05)
            assert statuses[-1] == 503, statuses
            assert statuses.count(200) <= 3  # at most the requests already in flight
            seen_before = len(world.origin.seen)
            refused = [one(c, f"/api/refused{i}") for i in range(5)]
            assert refused == [503] * 5
            assert len(world.origin.seen) == seen_before  # nothing forwarded meanwhile
            filler.unlink()
            deadline = time.monotonic() + 10
            while one(c, "/api/back") != 200:
                assert time.monotonic() < deadline, "proxy did not recover"
                time.sleep(0.2)
        assert p.stop() == 0
        lines = log.read_bytes().splitlines()
        events = [orjson.loads(line) for line in lines]
        assert sorted(e["decision_id"] for e in events) == sorted(d for d, _ in answered)
        by_id = {e["decision_id"]: e for e in events}
        for decision_id, status in answered:
            assert by_id[decision_id]["status"] == status
            if status == 503:
                assert by_id[decision_id]["result"]["reason"] == "audit_unavailable"
        prev = "0" * 64
        for line in lines:
            assert orjson.loads(line)["prev_hash"] == prev
            prev = hashlib.sha256(line).hexdigest()
    finally:
        p.stop()
