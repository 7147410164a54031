"""``egress logs verify``: is this decision log whole, in order and unedited?

Every event carries ``seq`` (its position in the chain) and ``prev_hash`` (SHA-256 of the
previous line, across rotated files). Walking the lines tells each kind of tampering apart:

- edited:    ``prev_hash`` of the next line does not match this line's bytes, seq continuous;
- deleted:   a gap in ``seq`` (and a hash link to a line that is not there);
- reordered: ``seq`` goes backwards, or a line links to an earlier line than its neighbour;
- truncated: a partial last line, or fewer lines than the seal file (``NAME.seal``) recorded,
             or the sealed line no longer hashes to the sealed value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from egress.audit.files import expand, read_lines
from egress.audit.writer import GENESIS, seal_path


@dataclass
class Problem:
    kind: str  # edited | deleted | reordered | truncated | corrupt
    file: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.file}:{self.line}: {self.detail}"


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    last_hash: str = GENESIS
    anchored: bool = True  # the chain starts at the beginning of history

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Line:
    file: str
    line: int
    seq: int
    link: str
    hash: str


def verify(paths: list[Path]) -> Report:
    report = Report()
    lines: list[_Line] = []
    for path in expand(paths):
        report.files.append(str(path))
        count, last = 0, None
        for lineno, raw, complete in read_lines(path):
            count = lineno
            try:
                event = orjson.loads(raw)
                seq, link = int(event["seq"]), str(event["prev_hash"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                kind = "truncated" if not complete else "corrupt"
                report.problems.append(
                    Problem(kind, str(path), lineno, "line is not a complete event")
                )
                continue
            h = hashlib.sha256(raw).hexdigest()
            lines.append(_Line(str(path), lineno, seq, link, h))
            last = h
        _check_seal(path, count, last, report)
    report.events = len(lines)
    if not lines:
        return report
    report.last_hash = lines[-1].hash
    by_seq: dict[int, _Line] = {}
    for ln in lines:
        if ln.seq in by_seq:
            report.problems.append(
                Problem("reordered", ln.file, ln.line, f"seq {ln.seq} appears twice")
            )
        by_seq.setdefault(ln.seq, ln)
    first, top = min(by_seq), max(by_seq)
    report.anchored = first == 0 and by_seq[first].link == GENESIS
    # deleted: holes in the sequence
    s = first
    while s < top:
        if s not in by_seq:
            nxt_seq = min(k for k in by_seq if k > s)
            nxt = by_seq[nxt_seq]
            report.problems.append(
                Problem(
                    "deleted",
                    nxt.file,
                    nxt.line,
                    f"{nxt_seq - s} event(s) missing before seq {nxt_seq}",
                )
            )
            s = nxt_seq
        s += 1
    # edited: an event's bytes no longer match the hash its successor recorded
    for ln in lines:
        before = by_seq.get(ln.seq - 1)
        if before is not None and before.hash != ln.link:
            report.problems.append(
                Problem(
                    "edited",
                    before.file,
                    before.line,
                    f"seq {before.seq} does not match the hash recorded by seq {ln.seq}",
                )
            )
    # reordered: the file order disagrees with the chain order
    prev: _Line | None = None
    for ln in lines:
        if prev is not None and ln.seq < prev.seq:
            report.problems.append(
                Problem("reordered", ln.file, ln.line, f"seq {ln.seq} comes after seq {prev.seq}")
            )
        prev = ln
    positions = {f: i for i, f in enumerate(report.files)}
    report.problems.sort(key=lambda p: (positions.get(p.file, len(positions)), p.line))
    return report


def _check_seal(path: Path, lines: int, last_hash: str | None, report: Report) -> None:
    if path.name.endswith(".gz"):
        return
    seal = seal_path(path)
    if not seal.exists():
        return
    try:
        doc = orjson.loads(seal.read_bytes())
        sealed_lines, sealed_hash = int(doc["lines"]), str(doc["last_hash"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        report.problems.append(Problem("corrupt", str(seal), 1, "unreadable seal"))
        return
    if lines < sealed_lines:
        report.problems.append(
            Problem(
                "truncated",
                str(path),
                lines,
                f"the seal recorded {sealed_lines} events, the file has {lines}",
            )
        )
        return
    if sealed_lines == 0:
        return
    hashes = [hashlib.sha256(raw).hexdigest() for _, raw, _ in read_lines(path)]
    if hashes[sealed_lines - 1] != sealed_hash:
        kind = "edited" if lines == sealed_lines else "truncated"
        report.problems.append(
            Problem(
                kind,
                str(path),
                sealed_lines,
                "the event the seal recorded last no longer matches (edited, or cut and rewritten)",
            )
        )
