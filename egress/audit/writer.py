"""A non-blocking, batched JSON-lines writer with a hash chain.

The proxy's hooks call ``submit`` (no I/O, no await); a background task drains the queue in
batches, serializes with orjson and writes them with one ``write`` per batch. ``close`` drains
everything before returning, so a graceful shutdown loses nothing. Each line carries the SHA-256
of the previous line (``prev_hash``); the first line of a file chains from the file's last line
when the writer reopens it, so deletions, edits and reorderings are detectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from egress.audit.events import Fields

GENESIS = "0" * 64


def _last_line_hash(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return GENESIS
            chunk = min(size, 1 << 20)
            f.seek(size - chunk)
            data = f.read(chunk)
    except FileNotFoundError:
        return GENESIS
    lines = data.rstrip(b"\n").split(b"\n")
    return hashlib.sha256(lines[-1]).hexdigest() if lines and lines[-1] else GENESIS


class DecisionLogWriter:
    def __init__(self, path: Path | None, *, batch_max: int = 512, fsync: bool = False) -> None:
        """``path=None`` writes to stdout (for containers that ship stdout)."""
        self.path = path
        self.batch_max = batch_max
        self.fsync = fsync
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._file: BinaryIO | None = None
        self._prev = GENESIS
        self.written = 0
        self.failed = 0

    async def start(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._prev = _last_line_hash(self.path)
            self._file = self.path.open("ab")
        else:
            self._file = sys.stdout.buffer
        self._task = asyncio.create_task(self._run(), name="egress-decision-log")

    def submit(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(event)

    def pending(self) -> int:
        return self._queue.qsize()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            events = [e for e in batch if e is not None]
            if events:
                self._write(events)
            if stop:
                return

    def _write(self, events: list[dict[str, Any]]) -> None:
        out = bytearray()
        for event in events:
            event[Fields.PREV_HASH] = self._prev
            line = orjson.dumps(event)
            self._prev = hashlib.sha256(line).hexdigest()
            out += line + b"\n"
        assert self._file is not None
        try:
            self._file.write(out)
            self._file.flush()
            if self.fsync and self.path is not None:
                os.fsync(self._file.fileno())
            self.written += len(events)
        except OSError as e:
            self.failed += len(events)
            print(f"egress: decision log write failed: {e}", file=sys.stderr)

    async def close(self) -> None:
        """Drain every submitted event, then close the file."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None
        if self._file is not None and self.path is not None:
            with contextlib.suppress(OSError):
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
        self._file = None
