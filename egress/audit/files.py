"""Finding and reading decision-log files: the current file, its rotated and gzipped siblings.

Each process writes its own chain into its own live file (``decisions.log``, a worker's
``decisions.log.w0``, the gateway's ``gateway-decisions.log``). A *family* is a live file and
its rotated copies: ``NAME.<UTC time>[.gz]`` from the writer, ``NAME.1[.gz]`` or
``NAME-YYYYMMDD[.gz]`` from logrotate. A worker's file is its own family, never part of
``NAME``'s: one family is one chain, verified on its own (asking for ``NAME`` brings the
workers' families along).
"""

from __future__ import annotations

import glob
import gzip
import re
from collections.abc import Iterator
from pathlib import Path

_SIDE_FILES = (".seal", ".tmp", ".lock", ".anchors", ".key")
_ROTATION = re.compile(r"(\.\d{8}T\d{6}\.\d{6}Z|\.\d+|-\d{8}(?:-\d+)?)$")


def live_name(name: str) -> str:
    """The live file a (possibly rotated, gzipped) log file belongs to."""
    if name.endswith(".gz"):
        name = name[:-3]
    return _ROTATION.sub("", name)


def _is_log(f: Path) -> bool:
    return f.is_file() and ".log" in f.name and not f.name.endswith(_SIDE_FILES)


def families(paths: list[Path]) -> list[tuple[Path, list[Path]]]:
    """(live path, its files oldest first) per chain. A directory means every log family in
    it; a file path means that file's family."""
    out: dict[Path, list[Path]] = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if _is_log(f):
                    out.setdefault(p / live_name(f.name), []).append(f)
        else:
            # NAME also brings its workers' logs (NAME.w0, ...): one family, one chain each
            live = p.parent / live_name(p.name)
            worker = re.compile(re.escape(live.name) + r"(\.w\d+)?$")
            found = False
            for f in p.parent.glob(glob.escape(live.name) + "*"):
                if _is_log(f) and worker.match(live_name(f.name)):
                    out.setdefault(p.parent / live_name(f.name), []).append(f)
                    found = True
            if not found:
                raise FileNotFoundError(f"no decision log at {p}")
    result = []
    for live, files in out.items():
        unique = sorted(set(files), key=lambda f: (f == live, f.name))
        result.append((live, unique))
    return result


def expand(paths: list[Path]) -> list[Path]:
    """Every log file of every family, each family oldest first, live file last."""
    return [f for _, files in families(paths) for f in files]


def read_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """(line number from 1, line without newline, ended with a newline)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if not data:
        return
    parts = data.split(b"\n")
    complete = data.endswith(b"\n")
    if complete:
        parts = parts[:-1]
    for i, line in enumerate(parts, 1):
        yield i, line, complete or i < len(parts)
