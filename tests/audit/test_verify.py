"""`egress logs verify` against a real, rotated log and against each kind of tampering."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson

from egress.audit.files import expand
from egress.audit.verify import verify
from tests.audit.conftest import RealLog

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "egress", "logs", "verify", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_real_log_is_intact_and_rotated(real_log: RealLog) -> None:
    files = expand([real_log.live])
    assert len(files) >= 3 and any(f.name.endswith(".gz") for f in files)
    report = verify([real_log.live])
    assert report.ok, report.problems
    assert report.anchored
    assert report.events == len(real_log.answered)
    out = _cli(str(real_log.live))
    assert out.returncode == 0 and out.stdout.startswith("OK: 25 events in")
    # a directory works too
    assert _cli(str(real_log.dir)).returncode == 0


def test_edited_event_is_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    lines = _lines(live)
    assert b'"allow":false' in b"".join(lines)
    k = next(i for i, ln in enumerate(lines[:-1]) if b'"allow":false' in ln)
    lines[k] = lines[k].replace(b'"allow":false', b'"allow":true', 1)
    live.write_bytes(b"".join(lines))
    report = verify([live])
    assert [(p.kind, p.line) for p in report.problems][:1] == [("edited", k + 1)]
    out = _cli(str(live))
    assert out.returncode == 1 and f"edited: {live}:{k + 1}" in out.stdout


def test_deleted_events_are_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    lines = _lines(live)
    assert len(lines) >= 3
    del lines[1:3]
    live.write_bytes(b"".join(lines))
    problems = verify([live]).problems
    assert problems[0].kind == "deleted" and problems[0].line == 2
    assert "2 event(s) missing" in problems[0].detail


def test_deleted_rotated_file_is_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    middle = expand([live])[1]
    middle.unlink()
    problems = verify([live]).problems
    assert problems and problems[0].kind == "deleted"


def test_reordered_events_are_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    lines = _lines(live)
    lines[0], lines[1] = lines[1], lines[0]
    live.write_bytes(b"".join(lines))
    kinds = {p.kind for p in verify([live]).problems}
    assert "reordered" in kinds and "deleted" not in kinds


def test_truncated_tail_is_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    lines = _lines(live)
    live.write_bytes(b"".join(lines[:-2]))  # whole events cut off the end
    problems = verify([live]).problems
    assert [p.kind for p in problems] == ["truncated"]
    assert f"recorded {len(lines)} events" in problems[0].detail


def test_partial_last_line_is_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    data = live.read_bytes()
    live.write_bytes(data[: len(data) - 40])
    kinds = [p.kind for p in verify([live]).problems]
    assert "truncated" in kinds


def test_edit_inside_a_gzipped_file_is_found(real_log: RealLog, tmp_path) -> None:
    live = real_log.copy(tmp_path / "c")
    gz = next(f for f in expand([live]) if f.name.endswith(".gz"))
    lines = gzip.decompress(gz.read_bytes()).splitlines(keepends=True)
    event = orjson.loads(lines[0])
    event["request"]["path"] = "/harmless"
    lines[0] = orjson.dumps(event) + b"\n"
    gz.write_bytes(gzip.compress(b"".join(lines)))
    problems = verify([live]).problems
    assert problems[0].kind == "edited" and problems[0].file == str(gz)


def test_rewritten_chain_is_caught_by_the_seal(real_log: RealLog, tmp_path) -> None:
    """An attacker who rewrites the whole tail with a fresh, valid chain still differs from
    the seal the writer kept."""
    import hashlib

    live = real_log.copy(tmp_path / "c")
    lines = [orjson.loads(x) for x in _lines(live)]
    prev = lines[0]["prev_hash"]
    out = []
    for ev in lines:
        ev["prev_hash"] = prev
        ev["result"]["allow"] = True
        raw = orjson.dumps(ev)
        prev = hashlib.sha256(raw).hexdigest()
        out.append(raw + b"\n")
    live.write_bytes(b"".join(out))
    assert [p.kind for p in verify([live]).problems] == ["edited"]
