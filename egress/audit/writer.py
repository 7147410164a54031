"""A non-blocking, batched JSON-lines writer with a hash chain that loses nothing it accepted.

The proxy's hooks call ``submit`` (no I/O, no await); a background task drains the queue in
batches, serializes with orjson and writes each batch with ``os.write`` on the raw descriptor.
Bytes that could not be written (disk full, I/O error) stay in a pending buffer in order and
are retried every ``retry_interval``; while anything is pending the writer is *unhealthy*, and
the proxy refuses new requests (``audit_unavailable``) unless told to degrade. ``close`` drains
everything before returning, so a graceful shutdown loses nothing.

Each line carries the SHA-256 of the previous line (``prev_hash``); the first line chains
from the file's last line when the writer reopens it, so deletions, edits and reorderings are
detectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from egress.audit.events import Fields

GENESIS = "0" * 64
MAX_PENDING_BYTES = 64 * 1024 * 1024


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
    def __init__(
        self,
        path: Path | None,
        *,
        batch_max: int = 512,
        fsync: bool = False,
        retry_interval: float = 0.2,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        """``path=None`` writes to stdout (for containers that ship stdout)."""
        self.path = path
        self.batch_max = batch_max
        self.fsync = fsync
        self.retry_interval = retry_interval
        self.max_pending_bytes = max_pending_bytes
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._fd: int | None = None
        self._prev = GENESIS
        self._pending = bytearray()
        self._pending_events = 0
        self.written = 0
        self.write_errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._last_report = 0.0

    @property
    def healthy(self) -> bool:
        """True when every accepted event has reached the sink."""
        return not self._pending

    async def start(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._prev = _last_line_hash(self.path)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        else:
            self._fd = sys.stdout.fileno()
        self._task = asyncio.create_task(self._run(), name="egress-decision-log")

    def submit(self, event: dict[str, Any]) -> None:
        self._queue.put_nowait(event)

    def pending(self) -> int:
        return self._queue.qsize() + self._pending_events

    async def _run(self) -> None:
        while True:
            if self._pending:
                try:
                    first = await asyncio.wait_for(self._queue.get(), self.retry_interval)
                except TimeoutError:
                    self._flush()
                    continue
            else:
                first = await self._queue.get()
            batch = [first]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            events = [e for e in batch if e is not None]
            if events:
                self._serialize(events)
            self._flush()
            if stop:
                return

    def _serialize(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            event[Fields.PREV_HASH] = self._prev
            line = orjson.dumps(event) + b"\n"
            if len(self._pending) + len(line) > self.max_pending_bytes:
                # the sink has been failing for long: bounded memory wins, loudly counted;
                # the chain skips the dropped event so `verify` will show the gap
                self.dropped += 1
                continue
            self._prev = hashlib.sha256(line[:-1]).hexdigest()
            self._pending += line
            self._pending_events += 1

    def _flush(self) -> None:
        assert self._fd is not None
        while self._pending:
            try:
                n = os.write(self._fd, self._pending)
            except OSError as e:
                self.write_errors += 1
                self.last_error = f"{type(e).__name__}: {e.strerror or e}"
                now = time.monotonic()
                if now - self._last_report > 5:
                    self._last_report = now
                    print(
                        f"egress: decision log write failed ({self.last_error}); "
                        f"{self._pending_events} events held for retry",
                        file=sys.stderr,
                        flush=True,
                    )
                return
            written_lines = self._pending[:n].count(b"\n")
            del self._pending[:n]
            self._pending_events -= written_lines
            self.written += written_lines
        self._pending_events = 0
        self.last_error = None
        if self.fsync and self.path is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)

    async def close(self, *, retry_for: float = 5.0) -> None:
        """Drain every submitted event (retrying a failing sink up to ``retry_for`` seconds)."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None
        deadline = time.monotonic() + retry_for
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(self.retry_interval)
            self._flush()
        if self._pending:
            print(
                f"egress: {self._pending_events} decision events could not be written",
                file=sys.stderr,
                flush=True,
            )
        if self._fd is not None and self.path is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
        self._fd = None
