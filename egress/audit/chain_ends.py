"""Where a chain starts and ends: its first line against the anchors, its last against the
seal and the anchors (a cut head or tail is told apart from history removed on purpose)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from egress.audit.chain import GENESIS, key_id, record_ok
from egress.audit.logfile import seal_path
from egress.audit.report import ChainLine, Problem, Report


def matching_anchors(
    anchors: list[dict[str, Any]], live: Path, key: bytes | None
) -> list[dict[str, Any]]:
    kid = key_id(key) if key is not None else None
    return [
        a
        for a in anchors
        if Path(str(a.get("log", ""))).name == live.name
        and (kid is None or a.get("key_id") in (None, kid))
    ]


def check_head(
    head: ChainLine, anchors: list[dict[str, Any]], live: Path, key: bytes | None, report: Report
) -> None:
    report.anchored = head.seq == 0 and head.link == GENESIS
    if report.anchored:
        report.proofs.append("the chain starts at its first event (seq 0)")
        return
    for a in matching_anchors(anchors, live, key):
        at_cut = a.get("seq") == head.seq - 1 and a.get("hash") == head.link
        if at_cut and (key is None or record_ok(key, a) is not False):
            report.notes.append(
                f"history starts at seq {head.seq}: older events were removed, at a point"
                f" the writer anchored ({a.get('reason')}, seq {head.seq - 1})"
            )
            report.proofs.append(f"an anchor proves the kept history starts at seq {head.seq}")
            return
    report.problems.append(
        Problem(
            "head_missing",
            head.file,
            head.line,
            f"the chain starts mid-history at seq {head.seq}: {head.seq} earlier event(s) are"
            " not here and no anchor proves this cut (deleted head lines or files)",
        )
    )


def check_seal(live: Path, tail: list[ChainLine], key: bytes | None, report: Report) -> None:
    seal = seal_path(live)
    if not live.exists():
        report.problems.append(
            Problem("truncated", str(live), 0, "the live file is missing (cut or deleted)")
        )
        return
    if not seal.exists():
        if tail:
            detail = f"no seal {seal.name}: a cut tail cannot be ruled out"
            report.problems.append(Problem("seal_missing", str(live), len(tail), detail))
        return
    try:
        doc = orjson.loads(seal.read_bytes())
        sealed_lines, sealed_hash = int(doc["lines"]), str(doc["last_hash"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        report.problems.append(Problem("corrupt", str(seal), 1, "unreadable seal"))
        return
    if key is not None:
        good = record_ok(key, doc)
        if good is False or (good is None and any(ln.signed for ln in tail)):
            what = "does not match the key" if good is False else "carries no MAC"
            report.problems.append(Problem("forged", str(seal), 1, f"the seal {what}"))
    lines = max((ln.line for ln in tail), default=0)
    if lines < sealed_lines:
        detail = f"the seal recorded {sealed_lines} events, the file has {lines}"
        report.problems.append(Problem("truncated", str(live), lines, detail))
        return
    if sealed_lines:
        at = next((ln for ln in tail if ln.line == sealed_lines), None)
        if at is None or at.hash != sealed_hash:
            kind = "edited" if lines == sealed_lines else "truncated"
            detail = "the event the seal recorded last no longer matches (edited, or cut)"
            report.problems.append(Problem(kind, str(live), sealed_lines, detail))
    report.proofs.append(
        f"the live file holds at least what its seal recorded (seq {doc.get('seq', '?')});"
        " without an anchor off this host, a cut tail with an older seal put back cannot be"
        " ruled out"
    )


def check_anchors(
    live: Path,
    by_seq: dict[int, ChainLine],
    anchors: list[dict[str, Any]] | None,
    key: bytes | None,
    report: Report,
) -> None:
    if anchors is None:
        return
    mine = matching_anchors(anchors, live, key)
    if not mine:
        report.proofs.append(f"no anchor names {live.name}: the anchors prove nothing here")
        return
    top, checked = max(by_seq), 0
    last = by_seq[top]
    for a in mine:
        seq, when = int(a.get("seq", -1)), a.get("time")
        if key is not None and record_ok(key, a) is False:
            report.problems.append(Problem("forged", "anchor", seq, "anchor MAC does not match"))
            continue
        if seq < min(by_seq):
            continue
        ln = by_seq.get(seq)
        if ln is None and seq > top:
            detail = f"an anchor (time {when}) recorded seq {seq}; the log ends at seq {top}"
            report.problems.append(Problem("truncated", last.file, last.line, detail))
        elif ln is not None and ln.hash != a.get("hash"):
            detail = f"seq {seq} differs from its anchor (time {when}): rewritten after it"
            report.problems.append(Problem("edited", ln.file, ln.line, detail))
        else:
            checked = max(checked, seq)
    report.proofs.append(
        f"{len(mine)} anchor(s) checked: the log holds the anchored history up to seq {checked}"
    )
