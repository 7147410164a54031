"""Finding and reading decision-log files: the current file, its rotated and gzipped siblings."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path


def expand(paths: list[Path]) -> list[Path]:
    """Log files in chain order. A directory means every ``*.log*`` in it; a file path also
    brings its rotated siblings (``NAME.<time>[.gz]``), oldest first, the live file last."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            bases = sorted(
                {
                    f.name.split(".log")[0] + ".log"
                    for f in p.iterdir()
                    if ".log" in f.name and not f.name.endswith((".seal", ".tmp"))
                }
            )
            for base in bases:
                out.extend(_family(p / base))
        else:
            out.extend(_family(p))
    seen: set[Path] = set()
    return [f for f in out if not (f in seen or seen.add(f))]


def _family(path: Path) -> list[Path]:
    rotated = sorted(
        f for f in path.parent.glob(path.name + ".*") if not f.name.endswith((".seal", ".tmp"))
    )
    live = [path] if path.exists() else []
    if not rotated and not live:
        raise FileNotFoundError(f"no decision log at {path}")
    return rotated + live


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
