"""``egress logs verify``: is each decision log chain whole, in order and unedited?

Every process writes its own chain (``files.families``): each is verified on its own. Every
event carries ``seq`` (its position), ``prev_hash`` (SHA-256 of the previous line) and ``mac``
(HMAC with the writer's key, ``chain.py``). Walking the lines tells the kinds of damage apart:

- edited:       ``prev_hash`` of the next line does not match this line's bytes;
- forged:       a MAC (line, seal or anchor) does not match the key: changed by someone
                without the key, whatever hash chain they recomputed (needs ``--key-file``);
- unsigned:     a line without a MAC where the chain is keyed (MACs stripped);
- deleted:      a gap in ``seq``;
- head_missing: the chain does not start at seq 0 and no anchor proves where it starts;
- reordered:    ``seq`` goes backwards;
- truncated:    a partial last line, fewer lines than the seal recorded, or an anchor that
                recorded a later seq than the log holds;
- seal_missing: the live file has no seal, so a cut tail cannot be ruled out;
- dropped:      the writer itself recorded events it could not keep (a stalled sink).

Notes (not problems) say what happened to the log and was recorded (a torn tail cut at start,
a reopen), and ``proofs`` says exactly what this run could and could not establish.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

from egress.audit.chain import check_mac, key_id, line_hash
from egress.audit.chain_ends import check_anchors, check_head, check_seal
from egress.audit.files import families, read_lines
from egress.audit.report import ChainLine, Problem, Report


def verify(
    paths: list[Path], *, key: bytes | None = None, anchors: list[dict[str, Any]] | None = None
) -> Report:
    """All chains under ``paths`` as one report (problems of every chain, in file order)."""
    chains = verify_chains(paths, key=key, anchors=anchors)
    if len(chains) == 1:
        return chains[0]
    merged = Report(chain=", ".join(c.chain for c in chains))
    for c in chains:
        merged.files += c.files
        merged.events += c.events
        merged.problems += c.problems
        merged.notes += c.notes
        merged.proofs += c.proofs
        merged.anchored = merged.anchored and c.anchored
    return merged


def verify_chains(
    paths: list[Path], *, key: bytes | None = None, anchors: list[dict[str, Any]] | None = None
) -> list[Report]:
    return [_chain(live, files, key, anchors) for live, files in families(paths)]


def _read(path: Path, key: bytes | None, report: Report) -> list[ChainLine]:
    out = []
    for lineno, raw, complete in read_lines(path):
        try:
            event = orjson.loads(raw)
            seq, link = int(event["seq"]), str(event["prev_hash"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            kind = "truncated" if not complete else "corrupt"
            report.problems.append(Problem(kind, str(path), lineno, "not a complete event"))
            continue
        has_mac = bool(event.get("mac"))
        signed = (check_mac(key, raw) if key is not None else True) if has_mac else None
        note = event.get("log_note")
        out.append(ChainLine(str(path), lineno, seq, link, line_hash(raw), signed, note))
    return out


def _chain(
    live: Path, files: list[Path], key: bytes | None, anchors: list[dict[str, Any]] | None
) -> Report:
    report = Report(chain=str(live))
    per_file = [(f, _read(f, key, report)) for f in files]
    # chain order is seq order: logrotate's NAME.1, NAME.2 sort backwards by name
    per_file.sort(key=lambda fl: (fl[1][0].seq if fl[1] else 1 << 62, fl[0] == live))
    report.files = [str(f) for f, _ in per_file]
    lines = [ln for _, fl in per_file for ln in fl]
    report.events = len(lines)
    check_seal(live, per_file[-1][1] if per_file else [], key, report)
    if lines:
        report.last_hash = lines[-1].hash
        by_seq = _links(lines, report)
        check_head(by_seq[min(by_seq)], anchors or [], live, key, report)
        _macs(lines, key, report)
        _notes(lines, report)
        check_anchors(live, by_seq, anchors, key, report)
    positions = {f: i for i, f in enumerate(report.files)}
    report.problems.sort(key=lambda p: (positions.get(p.file, len(positions)), p.line))
    return report


def _links(lines: list[ChainLine], report: Report) -> dict[int, ChainLine]:
    by_seq: dict[int, ChainLine] = {}
    for ln in lines:
        if ln.seq in by_seq:
            report.problems.append(
                Problem("reordered", ln.file, ln.line, f"seq {ln.seq} appears twice")
            )
        by_seq.setdefault(ln.seq, ln)
    seqs = sorted(by_seq)
    for a, b in itertools.pairwise(seqs):
        if b - a > 1:
            nxt = by_seq[b]
            detail = f"{b - a - 1} event(s) missing before seq {b}"
            report.problems.append(Problem("deleted", nxt.file, nxt.line, detail))
    for ln in lines:
        before = by_seq.get(ln.seq - 1)
        if before is not None and before.hash != ln.link:
            detail = f"seq {before.seq} does not match the hash recorded by seq {ln.seq}"
            report.problems.append(Problem("edited", before.file, before.line, detail))
    prev: ChainLine | None = None
    for ln in lines:
        if prev is not None and ln.seq < prev.seq:
            detail = f"seq {ln.seq} comes after seq {prev.seq}"
            report.problems.append(Problem("reordered", ln.file, ln.line, detail))
        prev = ln
    return by_seq


def _macs(lines: list[ChainLine], key: bytes | None, report: Report) -> None:
    signed = [ln for ln in lines if ln.signed is not None]
    if key is None:
        if signed:
            report.proofs.append(
                "CANNOT PROVE: events carry MACs but no --key-file was given, so an edit"
                " with a recomputed hash chain and seal cannot be ruled out"
            )
        else:
            report.proofs.append(
                "CANNOT PROVE: unkeyed log (no MACs: written before keyed chains or without a"
                " key); the hash chain shows edits, but whoever can write the file can"
                " recompute the chain and the seal"
            )
        return
    if not signed:
        ln = lines[0]
        detail = "a key was given but no event carries a MAC (stripped, or an unkeyed log)"
        report.problems.append(Problem("unsigned", ln.file, ln.line, detail))
        return
    started = False
    bad = 0
    for ln in lines:
        started = started or ln.signed is not None
        if ln.signed is False:
            bad += 1
            detail = "the MAC does not match the key: changed by someone without the key"
            report.problems.append(Problem("forged", ln.file, ln.line, detail))
        elif ln.signed is None and started:
            bad += 1
            detail = "no MAC in a keyed chain (stripped)"
            report.problems.append(Problem("unsigned", ln.file, ln.line, detail))
    if not bad:
        report.proofs.append(
            f"every signed event's MAC matches key {key_id(key)}: no line was edited, inserted"
            " or re-chained by anyone without the key"
        )


def _notes(lines: list[ChainLine], report: Report) -> None:
    for ln in lines:
        if not isinstance(ln.note, dict):
            continue
        for note in ln.note.get("notes", []):
            what = note.get("event")
            if what == "torn_tail_truncated":
                report.notes.append(
                    f"{note.get('file')}: a crash left a partial line of {note.get('bytes')}"
                    f" bytes at offset {note.get('offset')}; cut at restart (recorded by seq"
                    f" {ln.seq})"
                )
            elif what == "reopened":
                report.notes.append(
                    f"log file reopened after {note.get('reason')} (before seq {ln.seq});"
                    f" {note.get('recovered_lines')} event(s) recovered from a deleted file"
                )
            elif what == "dropped":
                detail = f"the writer dropped {note.get('count')} event(s) ({note.get('why')})"
                report.problems.append(Problem("dropped", ln.file, ln.line, detail))
