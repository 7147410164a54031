"""Cut the policy data in a child process, so a reload never holds the serving process's GIL.

Parsing a data file of 10,000 agents (~20 MB of JSON) and serializing each agent's entry takes
most of a second of pure Python-held work; on a thread of the proxy that is most of a second in
which the event loop cannot run. The child (``python -m egress.policy.data_cutter``, one per
serving process, started on first use) does it instead and remembers each agent's digest from
the previous cut, so what comes back over the pipe is only what changed: the shared parts and
the added, edited and removed agents. The parent applies that to its current slices.

Protocol: length-prefixed pickles on the child's stdin/stdout, one request (token, path), one
answer (a ``Delta`` or an error text). Both ends are this module; nothing else writes the pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import hashlib
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from egress.errors import ConfigError
from egress.policy.slices import DataSlices, Part, slice_data

Entries = dict[str, dict[str, tuple[bytes, str]]]
_LEN = struct.Struct("!Q")


@dataclass(frozen=True, slots=True)
class Delta:
    """What changed in the data since the previous cut under the same token."""

    data_digest: str
    parts: tuple[Part, ...]
    shared_digest: str
    sliced: bool
    changed: Entries  # added or edited agents (every agent when ``full``)
    removed: tuple[tuple[str, str], ...]
    full: bool

    @property
    def changed_count(self) -> int:
        return sum(len(v) for v in self.changed.values()) + len(self.removed)

    def apply(self, old: DataSlices | None) -> DataSlices:
        """The new slices: ``old``'s agents with this delta applied (copying touched users only)."""
        if self.full:
            agents = self.changed
        elif old is None:
            raise ValueError("a partial delta needs the slices it was cut against")
        else:
            agents = dict(old.agents)
            for user, names in self.changed.items():
                agents[user] = {**agents.get(user, {}), **names}
            for user, name in self.removed:
                row = {n: e for n, e in agents.get(user, {}).items() if n != name}
                if row:
                    agents[user] = row
                else:
                    agents.pop(user, None)
        return DataSlices(self.parts, self.shared_digest, self.sliced, agents)


Digests = dict[tuple[str, str], str]


def cut(path: Path, previous: Digests | None) -> tuple[Delta, Digests]:
    """Slice ``path``; the delta against ``previous`` digests, and the new digests."""
    raw = path.read_bytes()
    slices = slice_data(raw, source=str(path))
    digests = {(u, n): d for u, names in slices.agents.items() for n, (_, d) in names.items()}
    changed: Entries = {}
    removed: tuple[tuple[str, str], ...] = ()
    if previous is None:
        changed = slices.agents
    else:
        for user, names in slices.agents.items():
            row = {n: e for n, e in names.items() if previous.get((user, n)) != e[1]}
            if row:
                changed[user] = row
        removed = tuple(k for k in previous if k not in digests)
    delta = Delta(
        data_digest=hashlib.sha256(raw).hexdigest(),
        parts=slices.parts,
        shared_digest=slices.shared_digest,
        sliced=slices.sliced,
        changed=changed,
        removed=removed,
        full=previous is None,
    )
    return delta, digests


class DataCutter:
    """The parent's handle on the child; one request at a time (a lock), restarted if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def cut(self, token: str, path: Path) -> Delta:
        with self._lock:
            for attempt in (1, 2):
                proc = self._child()
                try:
                    assert proc.stdin is not None and proc.stdout is not None
                    _send(proc.stdin, (token, str(path)))
                    answer = _receive(proc.stdout)
                    break
                except (OSError, EOFError, struct.error) as e:
                    self._proc = None  # the child died: a new one cuts in full
                    if attempt == 2:
                        raise ConfigError("the data cutter process failed", "policy_error") from e
        if isinstance(answer, str):
            raise ConfigError(answer, "policy_data_invalid")
        assert isinstance(answer, Delta)
        return answer

    def _child(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "egress.policy.data_cutter"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._proc

    def close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()  # the child's read ends: it exits
            self._proc.wait(5)
            self._proc = None


_SHARED: DataCutter | None = None


def shared_cutter() -> DataCutter:
    """One child per process, for every engine in it (tokens keep their baselines apart)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = DataCutter()
    return _SHARED


def _send(stream: IO[bytes], obj: object) -> None:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(body)) + body)
    stream.flush()


def _receive(stream: IO[bytes]) -> object:
    head = stream.read(_LEN.size)
    if len(head) != _LEN.size:
        raise EOFError
    (size,) = _LEN.unpack(head)
    body = stream.read(size)
    if len(body) != size:
        raise EOFError
    return pickle.loads(body)  # noqa: S301 - our own child process, over its own pipe


def _serve() -> None:
    baselines: dict[str, Digests] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            request = _receive(stdin)
        except EOFError:
            return
        if not (isinstance(request, tuple) and len(request) == 2):
            return
        token, path = str(request[0]), Path(str(request[1]))
        try:
            delta, baselines[token] = cut(path, baselines.get(token))
            _send(stdout, delta)
            del delta
        except (ConfigError, OSError) as e:
            _send(stdout, str(e))
        _give_back_memory()


def _give_back_memory() -> None:
    """Hand the parse's freed heap back to the OS: between cuts this process holds only the
    digests, not the peak of a whole-document parse (glibc keeps freed memory otherwise)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: reused by the next cut
        ctypes.CDLL("libc.so.6").malloc_trim(0)


if __name__ == "__main__":
    # run the imported module's loop, so what is pickled names egress.policy.data_cutter.Delta
    from egress.policy import data_cutter

    data_cutter._serve()
