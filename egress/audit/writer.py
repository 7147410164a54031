"""The decision log writer: events in, chained and signed lines out, off the event loop.

The proxy's hooks call ``submit`` (no I/O): the event goes on a bounded queue that a writer
*thread* drains in batches, so a slow disk or a stalled pipe (``--decision-log -`` to a reader
that stopped reading) never blocks the event loop, health checks included. When the queue is
full (the sink stalled), ``submit`` drops the event, counts it and records the count in the
next event written (``log_note``); the writer is then *unhealthy*. Bytes that could not be
written (disk full, I/O error) stay pending in order and are retried every ``retry_interval``;
while anything is failing the writer is unhealthy too. Unhealthy means: ``/readyz`` says not
ready and, with ``--on-log-failure deny``, new requests are refused (``audit_unavailable``).
``close`` drains everything before returning, so a graceful shutdown loses nothing.

Durability (``fsync``):
  ``always``   submit() writes and fsyncs before it returns: an answered request's event is on
               disk before the answer leaves (a file only; stdout is always queued);
  ``interval`` (default) writes within a batch, fsyncs every ``fsync_interval`` seconds;
  ``never``    leaves flushing to the OS.

The file (``logfile.py``) is locked, checked every ``check_interval`` for deletion or renaming
and reopened then or on ``request_reopen`` (SIGHUP, for logrotate); it rotates past
``max_bytes``/``max_age``. Lines are chained and signed (``chain.py``); a seal ``NAME.seal``
records the head at every interval, rotation and close, and anchors (``anchor.py``) ship the
head off the host.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from egress import reasons
from egress.audit.chain import GENESIS, Chain, key_id, line_hash
from egress.audit.logfile import LogFile, LogLocked, recover_tail, rotated_name, seal_path
from egress.audit.witness import Witness
from egress.errors import ConfigError

__all__ = ["GENESIS", "DecisionLogWriter", "rotated_name", "seal_path"]

MAX_PENDING_BYTES = 64 * 1024 * 1024
FSYNC_POLICIES = ("always", "interval", "never")


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
        queue_max: int = 10_000,
        key: bytes | None = None,
        anchor: str | None = None,
        anchor_interval: float = 60.0,
        check_interval: float = 0.25,
        stdout_fd: int | None = None,
    ) -> None:
        """``path=None`` writes to stdout (``stdout_fd``, default descriptor 1)."""
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
        self.queue_max = max(1, queue_max)
        self.check_interval = check_interval
        self.key_id = key_id(key) if key is not None else None
        self._chain = Chain(key)
        self._witness = Witness(self._chain, path, self.key_id, anchor, anchor_interval)
        self._stdout_fd = stdout_fd
        self._file: LogFile | None = None
        # a deque and an Event, not queue.Queue: append and len are atomic and lock-free, so
        # submit costs the event loop well under a microsecond
        self._q: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._lock = threading.Lock()  # chain, pending bytes, the file: the writer's state
        self._count_lock = threading.Lock()  # drops counted on the loop, recorded by the thread
        self._thread: threading.Thread | None = None
        self._reopen = threading.Event()
        self._pending = bytearray()
        self._pending_events = 0
        self._pending_heads: collections.deque[tuple[int, str]] = collections.deque()
        self._notes: list[dict[str, Any]] = []
        self._unrecorded_drops = 0
        self._recovered = 0  # lines carried over from a deleted file, for the reopen note
        self._failing = False
        self._lost: str | None = None
        self._last_check = time.monotonic()
        self._last_fsync = time.monotonic()
        self._last_report = 0.0
        self._compressors: list[threading.Thread] = []
        self._opened = False
        self.written = 0
        self.write_errors = 0
        self.dropped = 0
        self.rotations = 0
        self.reopens = 0
        self.last_error: str | None = None

    def set_redactor(self, redact: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Applied to every event before its line is made (and signed)."""
        with self._lock:
            self._chain.redact = redact

    # -- state seen from the event loop ---------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """True while every accepted event can reach the sink: no failing write, the file
        where the path says, and room on the queue."""
        return not self._failing and self._lost is None and len(self._q) < self.queue_max

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def _fd(self) -> int | None:
        if self.path is None:
            return self._stdout_fd if self._stdout_fd is not None else sys.stdout.fileno()
        return self._file.fd if self._file is not None else None

    def pending(self) -> int:
        return len(self._q) + self._pending_events

    def problem(self) -> str:
        if self._lost is not None:
            return self.last_error or f"decision log {self._lost}"
        if len(self._q) >= self.queue_max:
            return f"decision log sink stalled: {len(self._q)} events queued"
        return self.last_error or ""

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> None:
        """Open (and lock) the file and recover its tail; raises ``LogLocked`` when another
        process writes it. Separate from ``start`` so a server can fail before it listens."""
        if self._opened:
            return
        self._opened = True
        if self.path is not None:
            self._file = LogFile(self.path)
            try:
                self._file.open(create_dirs=True)
            except LogLocked as e:
                raise ConfigError(
                    f"{e}: one process per decision log (give each its own --state-dir or"
                    " --decision-log)",
                    reasons.STATE_LOCKED,
                ) from e
            assert self._file.fd is not None
            tail = recover_tail(self._file.fd, self.path)
            self._file.lines = tail.lines
            self._file.bytes = self._file.confirmed = os.fstat(self._file.fd).st_size
            self._chain.prev, self._chain.seq = tail.prev, tail.next_seq
            self._witness.head = (tail.next_seq - 1, tail.prev)
            if tail.torn is not None:
                self._notes.append(tail.torn)
                print(
                    f"egress: decision log {self.path} ended in a partial line"
                    f" ({tail.torn['bytes']} bytes, a crash mid-write): truncated; the next"
                    " event records it",
                    file=sys.stderr,
                    flush=True,
                )
        self._witness.anchor(self._file, "start")

    async def start(self) -> None:
        self.open()
        self._thread = threading.Thread(target=self._run, name="egress-decision-log", daemon=True)
        self._thread.start()

    def request_reopen(self) -> None:
        """Reopen the file by its path (SIGHUP after logrotate moved it)."""
        self._reopen.set()
        self._wake.set()

    def submit(self, event: dict[str, Any]) -> None:
        if self.fsync == "always" and self.path is not None:
            with self._lock:
                self._serialize([event])
                self._flush()
            return
        if len(self._q) >= self.queue_max:
            with self._count_lock:
                self._unrecorded_drops += 1
                self.dropped += 1
            return
        self._q.append(event)
        if not self._wake.is_set():
            self._wake.set()

    async def close(self, *, retry_for: float = 5.0) -> None:
        """Drain every submitted event (retrying a failing sink up to ``retry_for`` seconds)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop = True
        self._wake.set()
        await asyncio.to_thread(thread.join, retry_for)
        if thread.is_alive():  # blocked on a sink that does not take bytes (a stalled pipe)
            print(
                f"egress: decision log sink stalled; {self.pending()} events not written",
                file=sys.stderr,
                flush=True,
            )
            return
        deadline = time.monotonic() + retry_for
        while (self._failing or self._lost) and time.monotonic() < deadline:
            await asyncio.sleep(self.retry_interval)
            with self._lock:
                self._check(force=True)
                self._flush()
        if self._pending:
            print(
                f"egress: {self._pending_events} decision events could not be written",
                file=sys.stderr,
                flush=True,
            )
        with self._lock:
            self._maybe_fsync(force=True, reason="close")
            if self._file is not None:
                self._file.close()
        await asyncio.to_thread(self._witness.close)
        for t in self._compressors:
            await asyncio.to_thread(t.join)

    # -- the writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            busy = self._failing or self._lost is not None
            timeout = min(self.check_interval, self.retry_interval if busy else self.fsync_interval)
            stop = self._stop  # read before draining: everything submitted before close
            if not self._q and not stop:
                self._wake.wait(timeout)
            self._wake.clear()  # before draining, so a submit after this sets it again
            batch: list[dict[str, Any]] = []
            while self._q and len(batch) < self.batch_max:
                batch.append(self._q.popleft())
            stop = stop and not self._q
            with self._lock:
                self._check(force=False)
                if batch or self._unrecorded_drops:
                    self._serialize(batch)
                self._flush()
                self._maybe_fsync(force=False)
            if stop:
                return

    def _take_notes(self) -> list[dict[str, Any]]:
        notes, self._notes = self._notes, []
        with self._count_lock:
            n, self._unrecorded_drops = self._unrecorded_drops, 0
        if n:
            notes.append({"event": "dropped", "count": n, "why": "queue full: sink stalled"})
        return notes

    def _serialize(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            notes = self._take_notes()
            saved = (self._chain.prev, self._chain.seq)
            line = self._chain.line(event, {"notes": notes} if notes else None)
            if len(self._pending) + len(line) > self.max_pending_bytes:
                # the sink has been failing for long: bounded memory wins; the next event
                # written says how many were dropped
                self._chain.prev, self._chain.seq = saved
                self._notes = notes
                self.dropped += 1
                with self._count_lock:
                    self._unrecorded_drops += 1
                continue
            self._pending += line
            self._pending_events += 1
            self._pending_heads.append((self._chain.seq - 1, self._chain.prev))

    def _flush(self) -> None:
        fd = self._fd
        if fd is None:
            return  # the file is lost and not reopened yet: bytes stay pending
        while self._pending:
            if self._should_rotate():
                self._rotate()
                fd = self._fd
                assert fd is not None
            chunk = self._pending
            if self.max_bytes and self._file is not None:
                # never split a line across files: write up to the last newline that fits
                room = max(self.max_bytes - self._file.bytes, 0)
                cut = chunk.rfind(b"\n", 0, room) + 1 if room < len(chunk) else len(chunk)
                if cut == 0:
                    cut = chunk.find(b"\n") + 1  # one line larger than the room: it goes alone
                chunk = chunk[:cut]
            try:
                n = os.write(fd, chunk)
            except OSError as e:
                self._failing = True
                self.write_errors += 1
                self.last_error = f"{type(e).__name__}: {e.strerror or e}"
                self._report(f"write failed ({self.last_error}); {self._pending_events} held")
                return
            lines = self._pending[:n].count(b"\n")
            del self._pending[:n]
            for _ in range(lines):
                self._witness.head = self._pending_heads.popleft()
            self._pending_events -= lines
            self.written += lines
            if self._file is not None:
                self._file.lines += lines
                self._file.bytes += n
        self._pending_events = 0
        self._failing = False
        if self._lost is None:
            self.last_error = None
        if self.fsync == "always":
            self._maybe_fsync(force=True)

    def _report(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_report > 5:
            self._last_report = now
            print(f"egress: decision log {what}", file=sys.stderr, flush=True)

    # -- loss, reopen, rotation -----------------------------------------------------------------
    def _check(self, *, force: bool) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if self._reopen.is_set():
            self._reopen.clear()
            self._reopen_file("sighup")
            return
        if not force and now - self._last_check < self.check_interval:
            return
        self._last_check = now
        if self._lost is not None:
            self._reopen_file(self._lost)  # retry: the directory may be back
            return
        assert self._file is not None
        why = self._file.lost()
        if why is not None:
            self._reopen_file(why)

    def _reopen_file(self, why: str) -> None:
        assert self.path is not None
        if self._file is not None and self._file.fd is not None:
            if why == "deleted":
                with contextlib.suppress(OSError):
                    self._carry(self._file.unconfirmed())
            self._file.fsync()
            self._file.close()
            self._file = None
        new = LogFile(self.path)
        try:
            new.open(create_dirs=False)
        except OSError as e:
            self._lost = why  # what was carried stays pending until a reopen works
            self.last_error = f"decision log {why} and cannot be reopened: {e.strerror or e}"
            self._report(self.last_error)
            return
        self._file, self._lost = new, None
        self.reopens += 1
        self._notes.append({"event": "reopened", "reason": why, "recovered_lines": self._recovered})
        self._recovered = 0
        self._flush()
        self._witness.seal(self._file)
        self._witness.anchor(self._file, "reopen")

    def _carry(self, lines: bytes) -> None:
        """Lines written into a file deleted after our last check: held to be written again."""
        if not lines:
            return
        k = lines.count(b"\n")
        self._pending[:0] = lines
        self._pending_heads.extendleft(reversed([_head_of(x) for x in lines.splitlines()]))
        self._pending_events += k
        self.written -= k
        self._recovered += k

    def _should_rotate(self) -> bool:
        f = self._file
        if f is None or f.lines == 0:
            return False
        if self.max_bytes and f.bytes >= self.max_bytes:
            return True
        return bool(self.max_age and time.monotonic() - f.started >= self.max_age)

    def _rotate(self) -> None:
        assert self._file is not None
        # the boundary: retention may later delete what is before it, provably at this point
        self._witness.anchor(self._file, "rotate")
        t = self._file.rotate(self.compress)
        self.rotations += 1
        self._witness.seal(self._file)
        if t is not None:
            self._compressors.append(t)

    # -- fsync, seal, anchors -------------------------------------------------------------------
    def _maybe_fsync(self, *, force: bool, reason: str = "interval") -> None:
        now = time.monotonic()
        if not force and now - self._last_fsync < self.fsync_interval:
            return
        self._last_fsync = now
        if self._file is not None and (self.fsync != "never" or force):
            self._file.fsync()
        self._witness.seal(self._file)
        self._witness.anchor(self._file, reason, force=force)


def _head_of(line: bytes) -> tuple[int, str]:
    try:
        seq = int(orjson.loads(line)["seq"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        seq = -1
    return seq, line_hash(line)
