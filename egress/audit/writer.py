"""A non-blocking, batched JSON-lines writer with a hash chain that loses nothing it accepted.

The proxy's hooks call ``submit`` (no I/O, no await); a background task drains the queue in
batches, serializes with orjson and writes each batch with ``os.write`` on the raw descriptor.
Bytes that could not be written (disk full, I/O error) stay in a pending buffer in order and
are retried every ``retry_interval``; while anything is pending the writer is *unhealthy*, and
the proxy refuses new requests (``audit_unavailable``) unless told to degrade. ``close`` drains
everything before returning, so a graceful shutdown loses nothing.

Durability (``fsync``):
  ``always``   submit() writes and fsyncs before it returns: an answered request's event is on
               disk before the answer leaves (kill -9 and power loss lose nothing answered);
  ``interval`` (default) writes within a batch, fsyncs every ``fsync_interval`` seconds:
               kill -9 loses only events still queued, power loss at most the interval;
  ``never``    leaves flushing to the OS.

Rotation: when the file passes ``max_bytes`` or ``max_age`` seconds it is renamed to
``<name>.<UTC time>`` (gzip-compressed in the background with ``compress``) and a new file is
started. The chain continues across files: each line carries the SHA-256 of the previous line
(``prev_hash``), the first line of a new file the hash of the last line of the previous one.
A seal file ``<name>.seal`` records the line count and last hash of the current file at every
fsync, rotation and close, so ``egress logs verify`` can tell a truncated tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import hashlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from egress.audit.events import Fields

GENESIS = "0" * 64
MAX_PENDING_BYTES = 64 * 1024 * 1024
FSYNC_POLICIES = ("always", "interval", "never")


def seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".seal")


def _tail_state(path: Path) -> tuple[str, int, int]:
    """(hash of the last line, number of lines, next seq) of an existing log file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return GENESIS, 0, 0
    lines = [ln for ln in data.split(b"\n") if ln]
    if not lines:
        return GENESIS, 0, 0
    try:
        next_seq = int(orjson.loads(lines[-1]).get(Fields.SEQ, len(lines) - 1)) + 1
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        next_seq = len(lines)
    return hashlib.sha256(lines[-1]).hexdigest(), len(lines), next_seq


def rotated_name(path: Path, now: float | None = None) -> Path:
    stamp = datetime.datetime.fromtimestamp(now or time.time(), datetime.UTC)
    return path.with_name(f"{path.name}.{stamp.strftime('%Y%m%dT%H%M%S.%fZ')}")


class DecisionLogWriter:
    def __init__(
        self,
        path: Path | None,
        *,
        batch_max: int = 512,
        fsync: str | bool = "interval",
        fsync_interval: float = 1.0,
        retry_interval: float = 0.2,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        max_bytes: int = 0,
        max_age: float = 0.0,
        compress: bool = False,
    ) -> None:
        """``path=None`` writes to stdout (for containers that ship stdout)."""
        if isinstance(fsync, bool):  # older callers
            fsync = "always" if fsync else "interval"
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}")
        self.path = path
        self.batch_max = batch_max
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.retry_interval = retry_interval
        self.max_pending_bytes = max_pending_bytes
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.compress = compress
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._fd: int | None = None
        self._prev = GENESIS
        self._seq = 0
        self._pending = bytearray()
        self._pending_events = 0
        self._file_bytes = 0
        self._file_lines = 0
        self._file_started = time.monotonic()
        self._last_fsync = time.monotonic()
        self._sync_lock = threading.Lock()
        self.written = 0
        self.write_errors = 0
        self.dropped = 0
        self.rotations = 0
        self.last_error: str | None = None
        self._last_report = 0.0
        self._compressors: list[threading.Thread] = []

    @property
    def healthy(self) -> bool:
        """True when every accepted event has reached the sink."""
        return not self._pending

    # -- lifecycle ----------------------------------------------------------------------------
    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._file_bytes = os.fstat(self._fd).st_size
        self._file_started = time.monotonic()

    async def start(self) -> None:
        if self.path is not None:
            self._prev, self._file_lines, self._seq = _tail_state(self.path)
            self._open()
        else:
            self._fd = sys.stdout.fileno()
        self._task = asyncio.create_task(self._run(), name="egress-decision-log")

    def submit(self, event: dict[str, Any]) -> None:
        if self.fsync == "always" and self._fd is not None:
            with self._sync_lock:
                self._serialize([event])
                self._flush()
            return
        self._queue.put_nowait(event)

    def pending(self) -> int:
        return self._queue.qsize() + self._pending_events

    # -- the writer task ------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            timeout = self.retry_interval if self._pending else self.fsync_interval
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                self._flush()
                self._maybe_fsync(force=False)
                continue
            batch = [first]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            stop = None in batch
            events = [e for e in batch if e is not None]
            if events:
                self._serialize(events)
            self._flush()
            self._maybe_fsync(force=False)
            if stop:
                return

    def _serialize(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            event[Fields.SEQ] = self._seq
            event[Fields.PREV_HASH] = self._prev
            line = orjson.dumps(event) + b"\n"
            if len(self._pending) + len(line) > self.max_pending_bytes:
                # the sink has been failing for long: bounded memory wins, loudly counted;
                # the chain skips the dropped event and its seq, so `verify` shows the gap
                self.dropped += 1
                self._seq += 1
                continue
            self._prev = hashlib.sha256(line[:-1]).hexdigest()
            self._seq += 1
            self._pending += line
            self._pending_events += 1

    def _flush(self) -> None:
        assert self._fd is not None
        while self._pending:
            if self._should_rotate():
                self._rotate()
            chunk = self._pending
            if self.max_bytes and self.path is not None:
                # never split a line across files: write up to the last newline that fits
                room = max(self.max_bytes - self._file_bytes, 0)
                cut = chunk.rfind(b"\n", 0, room) + 1 if room < len(chunk) else len(chunk)
                if cut == 0:
                    cut = chunk.find(b"\n") + 1  # one line larger than the room: it goes alone
                chunk = chunk[:cut]
            try:
                n = os.write(self._fd, chunk)
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
            self._file_lines += written_lines
            self._file_bytes += n
            self.written += written_lines
        self._pending_events = 0
        self.last_error = None
        if self.fsync == "always":
            self._maybe_fsync(force=True)

    # -- fsync, seal, rotation ------------------------------------------------------------------
    def _maybe_fsync(self, *, force: bool) -> None:
        if self.path is None or self._fd is None or (self.fsync == "never" and not force):
            return
        now = time.monotonic()
        if not force and now - self._last_fsync < self.fsync_interval:
            return
        self._last_fsync = now
        with contextlib.suppress(OSError):
            os.fsync(self._fd)
            self._write_seal()

    def _write_seal(self) -> None:
        assert self.path is not None
        if self._pending:
            return  # the seal describes what is on disk, never what is still held
        doc = {
            "file": self.path.name,
            "lines": self._file_lines,
            "last_hash": self._prev,
            "updated": time.time(),
        }
        tmp = seal_path(self.path).with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, seal_path(self.path))

    def _should_rotate(self) -> bool:
        if self.path is None or self._file_lines == 0:
            return False
        if self.max_bytes and self._file_bytes >= self.max_bytes:
            return True
        return bool(self.max_age and time.monotonic() - self._file_started >= self.max_age)

    def _rotate(self) -> None:
        assert self.path is not None and self._fd is not None
        with contextlib.suppress(OSError):
            os.fsync(self._fd)
        os.close(self._fd)
        target = rotated_name(self.path)
        os.replace(self.path, target)
        self.rotations += 1
        self._file_lines = 0
        self._open()
        self._write_seal()
        if self.compress:
            t = threading.Thread(target=_gzip_file, args=(target,), daemon=True)
            t.start()
            self._compressors.append(t)

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
            self._maybe_fsync(force=True)
            os.close(self._fd)
        self._fd = None
        for t in self._compressors:
            await asyncio.to_thread(t.join)


def _gzip_file(path: Path) -> None:
    gz = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(gz.with_suffix(".gz.tmp"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(gz.with_suffix(".gz.tmp"), gz)
    path.unlink()
