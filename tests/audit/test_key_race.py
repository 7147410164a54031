"""Workers that start together race to create the log key: every one ends with the same key.

Seen in CI: two ``--workers`` processes both found no ``log.key``; the second's exclusive
create failed (``config_invalid: File exists``) and the worker exited. Real processes here,
started at once against one missing key file, many rounds.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from egress.audit.chain import load_key


def _load(path: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        out.put(load_key(Path(path), create=True).hex())
    except Exception as e:  # reported to the parent, which fails the test
        out.put(f"error: {e!r}")


@pytest.mark.parametrize("processes", [2, 8])
def test_racing_creators_share_one_key(tmp_path: Path, processes: int) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(10):
        key = tmp_path / f"r{round_}" / "log.key"
        out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
        procs = [ctx.Process(target=_load, args=(str(key), out)) for _ in range(processes)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(10)
        got = {out.get(timeout=5) for _ in procs}
        assert len(got) == 1, got  # no error, one key
        assert not next(iter(got)).startswith("error")
        assert key.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in key.parent.iterdir()] == ["log.key"]  # no temp file left
