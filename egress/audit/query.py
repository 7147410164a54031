"""``egress logs query``: ask the decision logs questions, with DuckDB underneath.

All files (live, rotated, gzipped) become one view named ``decisions`` with the event schema as
columns (nested fields as structs: ``agent.user``, ``request.host``, ``result.reason``...).
Filters compile to SQL with bound parameters; ``--sql`` runs any SELECT over the view.
"""

from __future__ import annotations

import datetime
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from egress.audit.files import expand
from egress.errors import ConfigError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

DEFAULT_COLUMNS = (
    "timestamp, agent.user AS user, agent.name AS agent, request.method AS method, "
    "request.host AS host, request.path AS path, "
    "CASE WHEN result.allow THEN (CASE WHEN result.would_deny THEN 'allow*' ELSE 'allow' END) "
    "ELSE 'deny' END AS decision, result.reason AS reason, status, secrets, decision_id"
)


def parse_time(value: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """``2h``/``30m``/``7d`` ago, or an ISO 8601 time (UTC when no zone is given)."""
    now = now or datetime.datetime.now(datetime.UTC)
    m = _DURATION.match(value.strip())
    if m:
        return now - datetime.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        t = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(
            f"not a time or duration: {value!r} (use 2h, 30m, 7d or ISO 8601)",
            reason="time_invalid",
        ) from e
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


@dataclass
class Filters:
    agent: str | None = None
    user: str | None = None
    host: str | None = None  # glob
    method: str | None = None
    decision: str | None = None  # allow | deny | would_deny
    reason: str | None = None
    status: int | None = None
    since: str | None = None
    until: str | None = None
    secret: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def add(sql: str, value: Any) -> None:
            clauses.append(sql)
            params.append(value)

        if self.agent:
            add("agent.name = ?", self.agent)
        if self.user:
            add("agent.user = ?", self.user)
        if self.host:
            add("lower(request.host) GLOB ?", self.host.lower())
        if self.method:
            add("request.method = ?", self.method.upper())
        if self.decision == "allow":
            clauses.append("result.allow")
        elif self.decision == "deny":
            clauses.append("NOT result.allow")
        elif self.decision == "would_deny":
            clauses.append("result.would_deny")
        if self.reason:
            add("result.reason = ?", self.reason)
        if self.status is not None:
            add("status = ?", self.status)
        if self.since:
            add("CAST(timestamp AS TIMESTAMPTZ) >= ?", parse_time(self.since))
        if self.until:
            add("CAST(timestamp AS TIMESTAMPTZ) < ?", parse_time(self.until))
        if self.secret:
            add("list_contains(secrets, ?)", self.secret)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


# The event schema (version 1) spelled out for DuckDB: 3x faster than auto-detection over
# many files (bench/RESULTS.md), and stable types whatever the first lines happen to hold.
COLUMNS = {
    "schema": "INTEGER",
    "decision_id": "VARCHAR",
    "timestamp": "VARCHAR",
    "path": "VARCHAR",
    "kind": "VARCHAR",
    "agent": "STRUCT(user VARCHAR, name VARCHAR, namespace VARCHAR)",
    "input": "JSON",
    "request": "STRUCT(method VARCHAR, scheme VARCHAR, host VARCHAR, port INTEGER, "
    "path VARCHAR, http_version VARCHAR)",
    "result": "STRUCT(allow BOOLEAN, reason VARCHAR, rules VARCHAR[], engine VARCHAR, "
    "revision VARCHAR, upstream VARCHAR, mode VARCHAR, would_deny BOOLEAN)",
    "secrets": "VARCHAR[]",
    "status": "INTEGER",
    "bytes": "STRUCT(request BIGINT, response BIGINT)",
    "metrics": "STRUCT(decision_ms DOUBLE, total_ms DOUBLE)",
    "error": "VARCHAR",
    "usage": "STRUCT(route VARCHAR, model VARCHAR, prompt_tokens BIGINT, completion_tokens BIGINT)",
    "labels": "STRUCT(proxy_id VARCHAR, version VARCHAR, component VARCHAR)",
    "seq": "BIGINT",
    "prev_hash": "VARCHAR",
    "log_note": "JSON",  # only on events after something happened to the log itself
    "mac": "VARCHAR",
}


def connect(paths: list[Path]) -> duckdb.DuckDBPyConnection:
    # a view cannot take bound parameters: file names go in as escaped SQL string literals
    files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in expand(paths))
    con = duckdb.connect()
    if sys.stderr.isatty():
        con.execute("SET enable_progress_bar = true")  # long scans show progress
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"
    view = (
        "CREATE VIEW decisions AS SELECT * FROM read_json([%s], "
        "format='newline_delimited', columns=%s, ignore_errors=true)"
    )
    con.execute(view % (files, columns))
    return con


def select(
    con: duckdb.DuckDBPyConnection, filters: Filters, *, limit: int = 100, full: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    where, params = filters.where()
    cols = "*" if full else DEFAULT_COLUMNS
    rel = con.execute(
        # the WHERE text is built from fixed fragments; every value is a bound parameter
        f"SELECT {cols} FROM decisions{where} ORDER BY timestamp, seq LIMIT {int(limit)}",  # noqa: S608
        params,
    )
    return [d[0] for d in rel.description], rel.fetchall()


def stats(
    con: duckdb.DuckDBPyConnection, filters: Filters
) -> tuple[list[str], list[tuple[Any, ...]]]:
    where, params = filters.where()
    head = (
        "SELECT agent.user AS user, agent.name AS agent, request.host AS host, "
        "CASE WHEN result.allow THEN 'allow' ELSE 'deny' END AS decision, "
        "count(*) AS events FROM decisions"
    )
    tail = " GROUP BY ALL ORDER BY events DESC, user, agent, host"
    statement = head + where + tail  # fixed fragments; every value is a bound parameter
    rel = con.execute(statement, params)
    return [d[0] for d in rel.description], rel.fetchall()


def sql(con: duckdb.DuckDBPyConnection, statement: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if not statement.lstrip().lower().startswith(("select", "with", "from", "describe")):
        raise ConfigError(
            "--sql runs read-only queries (SELECT/WITH/FROM/DESCRIBE)", reason="sql_not_allowed"
        )
    rel = con.execute(statement)
    return [d[0] for d in rel.description], rel.fetchall()
