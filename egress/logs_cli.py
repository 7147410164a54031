"""CLI commands over decision logs: ``egress logs verify|query`` and ``egress policy replay``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from egress.audit import query as q
from egress.audit.replay import replay
from egress.audit.verify import verify

DEFAULT_LOG = Path("state/decisions.log")


def _paths(a: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in a.paths] or [DEFAULT_LOG]


def _table(columns: list[str], rows: list[tuple[Any, ...]], title: str | None = None) -> None:
    """A rich table on a terminal; tab-separated lines when piped (for grep, cut, awk)."""
    if not sys.stdout.isatty():
        if title:
            print(f"# {title}")
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
        return
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


def cmd_verify(a: argparse.Namespace) -> int:
    report = verify(_paths(a))
    for p in report.problems[: a.max_problems]:
        print(p)
    if len(report.problems) > a.max_problems:
        print(f"... and {len(report.problems) - a.max_problems} more problems")
    if report.ok:
        start = "from the first event" if report.anchored else "from a mid-history anchor"
        print(
            f"OK: {report.events} events in {len(report.files)} file(s), chain intact "
            f"{start}; last hash {report.last_hash}"
        )
        return 0
    first = report.problems[0]
    print(
        f"BROKEN: first problem at {first.file}:{first.line} ({first.kind}); "
        f"{len(report.problems)} problem(s) in {report.events} events",
        file=sys.stderr,
    )
    return 1


def cmd_query(a: argparse.Namespace) -> int:
    con = q.connect(_paths(a))
    filters = q.Filters(
        agent=a.agent,
        user=a.user,
        host=a.host,
        method=a.method,
        decision=a.decision,
        reason=a.reason,
        status=a.status,
        since=a.since,
        until=a.until,
        secret=a.secret,
    )
    if a.sql:
        cols, rows = q.sql(con, a.sql)
    elif a.stats:
        cols, rows = q.stats(con, filters)
    else:
        cols, rows = q.select(con, filters, limit=a.limit, full=a.json)
    if a.json:
        out = sys.stdout.buffer
        for row in rows:
            out.write(orjson.dumps(dict(zip(cols, row, strict=True)), default=str) + b"\n")
        return 0
    _table(cols, rows)
    return 0


def cmd_replay(a: argparse.Namespace) -> int:
    paths = _paths(a)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.completed} events"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=None)
        report = replay(
            paths,
            Path(a.policy),
            Path(a.data) if a.data else None,
            progress=lambda n: bar.advance(task, n),
        )
    print(
        f"{report.events} events, {report.replayed} replayed, {report.skipped} skipped "
        f"(no policy verdict); {report.deny_to_allow} deny->allow, "
        f"{report.allow_to_deny} allow->deny"
    )
    for title, groups in (
        ("deny -> allow (widens access)", report.widened),
        ("allow -> deny (narrows access)", report.narrowed),
    ):
        if not groups:
            continue
        rows = []
        for (agent, host), flips in sorted(groups.items()):
            ex = flips[0]
            rows.append(
                (agent, host, len(flips), f"{ex.method} {ex.path}", f"{ex.before} -> {ex.after}")
            )
        _table(["agent", "host", "flips", "example", "reason"], rows, title=title)
    return 1 if report.deny_to_allow else 0


def register(sub: argparse._SubParsersAction) -> None:
    logs = sub.add_parser("logs", help="decision logs").add_subparsers(dest="sub", required=True)
    ver = logs.add_parser(
        "verify", help="check the hash chain: edits, deletions, reordering, truncation"
    )
    ver.add_argument("paths", nargs="*", help="log files or directories [state/decisions.log]")
    ver.add_argument("--max-problems", type=int, default=20)
    ver.set_defaults(func=cmd_verify)

    qry = logs.add_parser("query", help="filter, count or SQL over the logs (DuckDB)")
    qry.add_argument("paths", nargs="*", help="log files or directories [state/decisions.log]")
    qry.add_argument("--agent")
    qry.add_argument("--user")
    qry.add_argument("--host", help="glob, e.g. '*.github.com'")
    qry.add_argument("--method")
    qry.add_argument("--decision", choices=["allow", "deny", "would_deny"])
    qry.add_argument("--reason")
    qry.add_argument("--status", type=int)
    qry.add_argument("--since", help="2h, 30m, 7d or an ISO time")
    qry.add_argument("--until", help="2h, 30m, 7d or an ISO time")
    qry.add_argument("--secret", help="events that injected this secret (by name)")
    qry.add_argument("--limit", type=int, default=100)
    qry.add_argument("--json", action="store_true", help="JSON lines (full events)")
    qry.add_argument("--stats", action="store_true", help="counts by user, agent, host, decision")
    qry.add_argument(
        "--sql",
        help="SQL over the view `decisions`, e.g. "
        '"SELECT result.reason, count(*) FROM decisions GROUP BY 1"',
    )
    qry.set_defaults(func=cmd_query)

    pol = sub.add_parser("policy", help="policy tools").add_subparsers(dest="sub", required=True)
    rep = pol.add_parser("replay", help="re-decide logged traffic with a candidate policy")
    rep.add_argument("paths", nargs="*", metavar="LOGS", help="decision logs")
    rep.add_argument("--policy", required=True, help="candidate policy directory")
    rep.add_argument("--data", help="candidate data file")
    rep.set_defaults(func=cmd_replay)
