"""`egress logs query` (DuckDB) and `egress policy replay` on a real, rotated proxy log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from egress.audit import query as q
from egress.audit.replay import replay
from egress.errors import ConfigError
from tests.audit.conftest import RealLog
from tests.conftest import World

REPO = Path(__file__).resolve().parents[2]


def _egress(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "egress", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_query_filters(real_log: RealLog) -> None:
    con = q.connect([real_log.live])
    cols, rows = q.select(con, q.Filters(), limit=1000)
    assert len(rows) == len(real_log.answered)  # rotated + gzipped files included
    _, denied = q.select(con, q.Filters(decision="deny"), limit=1000)
    assert len(denied) == sum(1 for _, s, _ in real_log.answered if s != 200)
    _, admin = q.select(con, q.Filters(reason="path_not_allowed"), limit=1000)
    assert admin and all(r[cols.index("path")].startswith("/admin") for r in admin)
    _, deletes = q.select(con, q.Filters(method="delete"), limit=1000)
    assert deletes and all(r[cols.index("method")] == "DELETE" for r in deletes)
    _, bob = q.select(con, q.Filters(user="bob@example.com"), limit=1000)
    assert len(bob) == 1
    _, hosts = q.select(con, q.Filters(host="local*"), limit=1000)
    assert len(hosts) == len(real_log.answered)
    _, none = q.select(con, q.Filters(host="*.github.com"), limit=1000)
    assert none == []
    _, with_secret = q.select(con, q.Filters(secret="github"), limit=1000)
    assert with_secret and all("github" in r[cols.index("secrets")] for r in with_secret)
    _, recent = q.select(con, q.Filters(since="1h"), limit=1000)
    assert len(recent) == len(real_log.answered)
    _, future = q.select(con, q.Filters(since="2999-01-01T00:00:00Z"), limit=1000)
    assert future == []
    _, status = q.select(con, q.Filters(status=403), limit=1000)
    assert len(status) == sum(1 for _, s, _ in real_log.answered if s == 403)


def test_query_stats_and_sql(real_log: RealLog) -> None:
    con = q.connect([real_log.live])
    cols, rows = q.stats(con, q.Filters())
    assert cols == ["user", "agent", "host", "decision", "events"]
    assert sum(r[-1] for r in rows) == len(real_log.answered)
    cols, rows = q.sql(
        con,
        "SELECT result.reason AS reason, count(*) AS n FROM decisions GROUP BY 1 ORDER BY 2 DESC",
    )
    assert dict(rows)["allowed"] >= 1
    with pytest.raises(ConfigError):
        q.sql(con, "DROP VIEW decisions")


def test_query_cli_table_and_json(real_log: RealLog) -> None:
    table = _egress("logs", "query", str(real_log.live), "--decision", "deny", "--limit", "3")
    assert table.returncode == 0, table.stderr
    assert "decision_id" in table.stdout and "deny" in table.stdout
    js = _egress("logs", "query", str(real_log.live), "--json", "--reason", "allowed")
    events = [orjson.loads(line) for line in js.stdout.splitlines()]
    assert events and all(e["result"]["allow"] for e in events)
    assert all("prev_hash" in e for e in events)  # full events
    stats = _egress("logs", "query", str(real_log.live), "--stats")
    assert "bob@example.com" in stats.stdout
    bad = _egress("logs", "query", str(real_log.live), "--since", "yesterday-ish")
    assert bad.returncode == 2 and bad.stderr.startswith("error[time_invalid]")


def _candidate(world: World, tmp_path: Path, mutate) -> Path:
    data = json.loads(world.data_file.read_text())
    mutate(data["egress"]["agents"])
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(data))
    return path


def test_replay_same_policy_flips_nothing(world: World, real_log: RealLog) -> None:
    report = replay([real_log.live], REPO / "policies", world.data_file)
    assert report.replayed == len(real_log.answered)
    assert report.deny_to_allow == 0 and report.allow_to_deny == 0


def test_replay_narrowing_policy_exit_0(world: World, real_log: RealLog, tmp_path) -> None:
    def narrow(agents: dict) -> None:
        rules = agents["alice@example.com"]["triage-bot"]["rules"]
        rules[0]["paths"] = ["/api/search"]  # /api/items no longer allowed

    data = _candidate(world, tmp_path, narrow)
    report = replay([real_log.live], REPO / "policies", data)
    assert report.allow_to_deny > 0 and report.deny_to_allow == 0
    ((group, flips),) = report.narrowed.items()
    assert group[0] == "alice@example.com/triage-bot"
    assert all(f.path.startswith("/api/items") and f.after == "path_not_allowed" for f in flips)
    out = _egress(
        "policy",
        "replay",
        str(real_log.live),
        "--policy",
        str(REPO / "policies"),
        "--data",
        str(data),
    )
    assert out.returncode == 0 and "allow -> deny" in out.stdout


def test_replay_widening_policy_exit_1(world: World, real_log: RealLog, tmp_path) -> None:
    def widen(agents: dict) -> None:
        rules = agents["alice@example.com"]["triage-bot"]["rules"]
        rules[0]["paths"].append("/admin")
        rules[0]["methods"].append("DELETE")

    data = _candidate(world, tmp_path, widen)
    report = replay([real_log.live], REPO / "policies", data)
    assert report.deny_to_allow > 0
    out = _egress(
        "policy",
        "replay",
        str(real_log.live),
        "--policy",
        str(REPO / "policies"),
        "--data",
        str(data),
    )
    assert out.returncode == 1
    assert "deny -> allow" in out.stdout and "alice@example.com/triage-bot" in out.stdout
