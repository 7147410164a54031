"""``egress logs query`` never hands agent-sent control bytes to the reader's terminal.

Events whose agent-controlled fields (request path and host, error text, agent name) hold each
class of control character are written by the real writer into a real log; the real CLI
prints them in every output mode (table, --json, --sql, --stats). The output must hold none
of the raw characters, and must still show where they were (escaped, not silently dropped).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from egress.audit import DecisionLogWriter
from egress.audit.escape import json_safe
from egress.audit.events import event_result, make_event, utc_timestamp

REPO = Path(__file__).resolve().parents[2]

CONTROLS = {
    "NUL": "\x00",
    "ESC (CSI)": "\x1b[2J\x1b]0;pwned\x07",
    "DEL": "\x7f",
    "C1 CSI": "\x9b31m",
    "CR": "\r",
    "LF": "\n",
    "TAB": "\t",
    "BEL/BS": "\x07\x08",
    "bidi override": "\u202e",
    "line separator": "\u2028",
    "arabic letter mark (bidi)": "\u061c",
    "zero-width space/joiner": "\u200b\u200d",
    "soft hyphen": "\u00ad",
    "hangul filler": "\u3164",
    "interlinear annotation": "\ufff9",
    "TAG characters (hidden ASCII)": "\U000e0041\U000e0042",
}
RAW = set("".join(CONTROLS.values())) - set("[]2J0;pwned31m")


def _log(tmp_path: Path, bad: str) -> Path:
    path = tmp_path / "decisions.log"

    async def write() -> None:
        w = DecisionLogWriter(path)
        await w.start()
        w.submit(
            make_event(
                decision_id="d-1",
                timestamp=utc_timestamp(1_800_000_000),
                kind="request",
                agent={"user": "alice@example.com", "name": f"bot{bad}", "namespace": "default"},
                policy_input=None,
                request={
                    "method": "GET",
                    "scheme": "https",
                    "host": f"evil{bad}.example",
                    "port": 443,
                    "path": f"/api/{bad}x",
                    "http_version": "HTTP/1.1",
                },
                result=event_result(None, allow=False, reason="default_deny"),
                secrets=[],
                status=403,
                bytes_in=0,
                bytes_out=0,
                decision_ms=None,
                total_ms=None,
                error=f"upstream said {bad}",
                labels={"proxy_id": "p", "version": "0", "component": "proxy"},
            )
        )
        await w.close()

    asyncio.run(write())
    return path


MODES = {
    "table": [],
    "json": ["--json"],
    "sql": ["--sql", "SELECT request.path, request.host, error, agent FROM decisions"],
    "stats": ["--stats"],
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(CONTROLS))
def test_query_output_escapes_control_characters(tmp_path: Path, name: str, mode: str) -> None:
    bad = CONTROLS[name]
    log = _log(tmp_path, bad)
    assert bad in orjson.loads(log.read_bytes().splitlines()[0])["request"]["path"]
    out = subprocess.run(
        [sys.executable, "-m", "egress", "logs", "query", str(log), *MODES[mode]],
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("utf-8")
    rows = text.splitlines()
    assert len(rows) == (1 if mode == "json" else 2), rows  # no row forged by a CR/LF
    if mode != "json":  # TAB separates the columns: no cell may add one
        assert {len(r.split("\t")) for r in rows} == {len(rows[0].split("\t"))}, rows
    for c in set(bad) & RAW - {"\n", "\t"}:  # LF and TAB: the row and column counts above
        assert c not in text, (name, mode, c)
    first = bad[0]
    if mode == "json":
        for row in rows:
            orjson.loads(row)  # still valid JSON
        escaped = json_safe(orjson.dumps(first).decode())[1:-1]
    else:
        c = ord(first)
        escaped = f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"
    assert escaped in text, (name, mode, text)  # shown escaped, not silently dropped
