"""The decision log file on disk: opened under an exclusive lock, checked for loss, rotated.

One process writes one log: ``open`` takes a non-blocking ``flock`` on the file, so a second
``egress serve`` pointed at the same log (or the same state dir) fails at start instead of
interleaving two chains in one file. ``lost`` compares the open descriptor with what the path
names now (device, inode, link count): a ``rm`` (link count 0), a ``mv`` (path gone or another
file there) or a logrotate rename is noticed and the writer reopens the path. Lines written to a
deleted file after the last good check are read back through the still-open descriptor and
written again into the new file, so a deletion loses only what was on disk before it.

``recover_tail`` runs once at start: a crash can leave half a line at the end; it is cut off
(and reported in the next event) rather than appended onto.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import gzip
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from egress.audit.chain import GENESIS, line_hash
from egress.audit.events import Fields


class LogLocked(OSError):
    """Another process holds the lock on this file."""


def lock_fd(fd: int, path: Path) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        raise LogLocked(f"{path} is in use by another egress process") from e


def seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".seal")


def rotated_name(path: Path, now: float | None = None) -> Path:
    stamp = datetime.datetime.fromtimestamp(now or time.time(), datetime.UTC)
    return path.with_name(f"{path.name}.{stamp.strftime('%Y%m%dT%H%M%S.%fZ')}")


@dataclass
class Tail:
    prev: str = GENESIS
    lines: int = 0
    next_seq: int = 0
    torn: dict[str, Any] | None = None  # the cut partial line, for the next event's log_note


def recover_tail(fd: int, path: Path) -> Tail:
    """Where the chain stands in an existing file; a partial last line is truncated away."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    tail = Tail()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        removed = data[cut:]
        os.ftruncate(fd, cut)
        data = data[:cut]
        tail.torn = {
            "event": "torn_tail_truncated",
            "file": path.name,
            "offset": cut,
            "bytes": len(removed),
            "sha256": line_hash(removed),
        }
    lines = [ln for ln in data.split(b"\n") if ln]
    if not lines:
        return tail
    tail.lines = len(lines)
    tail.prev = line_hash(lines[-1])
    try:
        tail.next_seq = int(orjson.loads(lines[-1]).get(Fields.SEQ, len(lines) - 1)) + 1
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        tail.next_seq = len(lines)
    return tail


class LogFile:
    """The open log: descriptor, lock, identity (device, inode) and size bookkeeping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.ident: tuple[int, int] = (0, 0)
        self.bytes = 0
        self.lines = 0
        self.started = time.monotonic()
        self.confirmed = 0  # bytes known to be in the file the path names (last good check)

    def open(self, *, create_dirs: bool) -> None:
        if create_dirs:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            lock_fd(fd, self.path)
        except LogLocked:
            os.close(fd)
            raise
        st = os.fstat(fd)
        self.fd, self.ident, self.bytes = fd, (st.st_dev, st.st_ino), st.st_size
        self.confirmed = self.bytes
        self.started = time.monotonic()

    def lost(self) -> str | None:
        """Why the path no longer names the open file (deleted, renamed, replaced), or None."""
        assert self.fd is not None
        if os.fstat(self.fd).st_nlink == 0:
            return "deleted"
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "renamed"
        if (st.st_dev, st.st_ino) != self.ident:
            return "replaced"
        self.confirmed = self.bytes
        return None

    def unconfirmed(self) -> bytes:
        """Bytes written after the last good check (read back from a deleted file)."""
        assert self.fd is not None
        data = os.pread(self.fd, max(os.fstat(self.fd).st_size - self.confirmed, 0), self.confirmed)
        return data[: data.rfind(b"\n") + 1]

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = None

    def fsync(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self.fd)

    def rotate(self, compress: bool) -> threading.Thread | None:
        """Rename the full file aside (gzip it in the background) and start a new one."""
        self.fsync()
        self.close()
        target = rotated_name(self.path)
        os.replace(self.path, target)
        self.lines = 0
        self.open(create_dirs=True)
        if not compress:
            return None
        t = threading.Thread(target=_gzip_file, args=(target,), daemon=True)
        t.start()
        return t

    def write_seal(self, doc: dict[str, Any]) -> None:
        seal = seal_path(self.path)
        tmp = seal.with_name(seal.name + ".tmp")
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, seal)


def _gzip_file(path: Path) -> None:
    gz = path.with_name(path.name + ".gz")
    with path.open("rb") as src, gzip.open(gz.with_suffix(".gz.tmp"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(gz.with_suffix(".gz.tmp"), gz)
    path.unlink()
