"""Tampering by someone who can write the log's disk but holds neither the key nor the anchors.

Each shape is applied to a copy of a real, rotated, keyed log a real proxy wrote (shipping its
anchors to a file elsewhere), then ``egress logs verify`` runs three ways: with nothing but
the files, with ``--key-file``, and with ``--anchor``. What it must say is in the table: the
problem kinds it reports, or OK together with the exact thing it cannot prove.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from egress.audit.files import expand
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


def _read(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return data.splitlines()


def _write(path: Path, lines: list[bytes]) -> None:
    data = b"".join(x + b"\n" for x in lines)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def _rechain(lines: list[bytes], *, strip_mac: bool) -> list[bytes]:
    """Allow everything, then recompute the hash chain as an attacker can (MACs stale or
    stripped: without the key they cannot be recomputed)."""
    out, prev = [], orjson.loads(lines[0])["prev_hash"]
    for raw in lines:
        ev = orjson.loads(raw)
        ev["result"]["allow"] = True
        ev["prev_hash"] = prev
        if strip_mac:
            ev["mac"] = None
        line = orjson.dumps(ev)
        prev = hashlib.sha256(line).hexdigest()
        out.append(line)
    return out


def _reseal(live: Path, *, strip_mac: bool) -> None:
    seal = live.with_name(live.name + ".seal")
    doc = orjson.loads(seal.read_bytes())
    lines = _read(live)
    doc["lines"], doc["last_hash"] = len(lines), hashlib.sha256(lines[-1]).hexdigest()
    doc["seq"] = orjson.loads(lines[-1])["seq"]
    if strip_mac:
        doc["mac"] = None
    seal.write_bytes(orjson.dumps(doc))


def head_lines_deleted(live: Path) -> None:
    oldest = expand([live])[0]
    _write(oldest, _read(oldest)[2:])


def oldest_file_deleted(live: Path) -> None:
    expand([live])[0].unlink()  # what retention does, or an attacker


def tail_cut_seal_deleted(live: Path) -> None:
    _write(live, _read(live)[:-2])
    live.with_name(live.name + ".seal").unlink()


def tail_cut_seal_rewritten(live: Path) -> None:
    _write(live, _read(live)[:-2])
    _reseal(live, strip_mac=False)


def chain_recomputed(live: Path) -> None:
    _write(live, _rechain(_read(live), strip_mac=False))
    _reseal(live, strip_mac=False)


def macs_stripped(live: Path) -> None:
    _write(live, _rechain(_read(live), strip_mac=True))
    _reseal(live, strip_mac=True)


OK = "OK"
# shape -> problem kinds reported (or OK) with: files only, --key-file, --anchor
CASES: list[tuple[Callable[[Path], None], set[str] | str, set[str] | str, set[str] | str]] = [
    (head_lines_deleted, {"head_missing"}, {"head_missing"}, {"head_missing"}),
    (oldest_file_deleted, {"head_missing"}, {"head_missing"}, OK),
    (tail_cut_seal_deleted, {"seal_missing"}, {"seal_missing"}, {"seal_missing", "truncated"}),
    (tail_cut_seal_rewritten, OK, {"forged"}, {"truncated"}),
    (chain_recomputed, OK, {"forged"}, {"edited"}),
    (macs_stripped, OK, {"unsigned"}, {"edited"}),
]


def _kinds(stdout: str) -> set[str]:
    return {line.split(":", 1)[0] for line in stdout.splitlines() if not line.startswith(" ")}


@pytest.mark.parametrize("mode", ["files", "key", "anchor"])
@pytest.mark.parametrize(
    ("shape", "files", "key", "anchor"), CASES, ids=[c[0].__name__ for c in CASES]
)
def test_tampering_is_found_or_named_as_unprovable(
    real_log: RealLog, tmp_path: Path, shape, files, key, anchor, mode: str
) -> None:
    live = real_log.copy(tmp_path / "c")
    whole = _cli(str(live), "--key-file", str(real_log.key), "--anchor", str(real_log.anchors))
    assert whole.returncode == 0, whole.stdout  # intact before the tampering
    shape(live)
    extra = {"files": [], "key": ["--key-file", str(real_log.key)]}.get(
        mode, ["--anchor", str(real_log.anchors)]
    )
    out = _cli(str(live), *extra)
    expected = {"files": files, "key": key, "anchor": anchor}[mode]
    if expected == OK:
        assert out.returncode == 0, out.stdout
        assert out.stdout.startswith("OK: ")
        if mode == "files":  # it passed, and it says what it could not rule out
            assert "CANNOT PROVE" in out.stdout
            assert "cut tail with an older seal put back cannot be ruled out" in out.stdout
        return
    assert out.returncode == 1, out.stdout
    assert expected <= _kinds(out.stdout), out.stdout
    assert "BROKEN" in out.stderr


def test_untouched_log_passes_every_way_and_says_what_it_proves(real_log: RealLog) -> None:
    out = _cli(
        str(real_log.live), "--key-file", str(real_log.key), "--anchor", str(real_log.anchors)
    )
    assert out.returncode == 0, out.stdout
    assert "MAC matches key" in out.stdout and "anchor(s) checked" in out.stdout
    assert "CANNOT PROVE" not in out.stdout.split("last hash")[0]
    plain = _cli(str(real_log.live))
    assert plain.returncode == 0 and "no --key-file was given" in plain.stdout
