"""Scanning every log a test run wrote for real secret values, in the forms a reader could
decode (plain, percent-encoded, base64 at every alignment, JSON ``\\u`` escapes).

Used by the session-wide check in ``tests/conftest.py``: whatever a suite did, no decision log,
gateway log or rotated sibling (gzipped or not) may hold a real value.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote


def forms(value: str) -> set[bytes]:
    """Byte strings whose presence in a log means ``value`` leaked."""
    raw = value.encode()
    out = {raw, quote(value, safe="").encode(), value.encode("unicode_escape")}
    out.add("".join(f"\\u{ord(c):04x}" for c in value).encode())
    for shift in range(3):
        # base64 of the value at each alignment: drop the characters that straddle the edges
        enc = base64.b64encode(b"\0" * shift + raw)
        start = (shift * 4 + 2) // 3 + (1 if shift else 0)
        core = enc[start : len(enc) - 4]
        if len(core) >= 12:
            out.add(core)
    return out


def log_files(root: Path) -> list[Path]:
    """Every file under ``root`` that a log writer made: ``*.log*`` (rotated, gzipped, per
    worker) and anything inside a ``logs`` folder."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and (".log" in p.name or p.parent.name == "logs" or p.suffix == ".jsonl")
    )


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError):
            return data  # a torn gzip member: scan the bytes as they are
    return data


def leaks(root: Path, values: Iterable[str]) -> list[str]:
    """``path: value-prefix`` for every log file under ``root`` holding a form of a value."""
    needles = {v: forms(v) for v in values}
    found: list[str] = []
    for path in log_files(root):
        try:
            data = _read(path)
        except OSError:
            continue  # removed while scanning (a test's own cleanup)
        for value, patterns in needles.items():
            if any(p in data for p in patterns):
                found.append(f"{path.relative_to(root)}: {value[:6]}…")
    return found
