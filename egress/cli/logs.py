"""``egress logs verify|query``: check and search decision logs. The audit modules, DuckDB and
rich load only when a command runs, so ``egress logs --help`` stays quick."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from egress.cli.output import log_paths, print_table


def cmd_verify(a: argparse.Namespace) -> int:
    """Each chain (one per writing process) on its own: problems, notes, then what this run
    proved and what it could not."""
    from egress.audit.anchor import read_anchors
    from egress.audit.chain import load_key
    from egress.audit.verify import verify_chains
    from egress.errors import ConfigError

    try:
        key = load_key(Path(a.key_file), create=False) if a.key_file else None
        anchors = [r for f in a.anchor or [] for r in read_anchors(Path(f))]
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the key or anchors: {e}", reason="config_invalid") from e
    status = 0
    for report in verify_chains(log_paths(a), key=key, anchors=anchors if a.anchor else None):
        for p in report.problems[: a.max_problems]:
            print(p)
        if len(report.problems) > a.max_problems:
            print(f"... and {len(report.problems) - a.max_problems} more problems")
        if report.ok:
            start = "from the first event" if report.anchored else "from an anchored cut"
            print(
                f"OK: {report.events} events in {len(report.files)} file(s), chain"
                f" {report.chain} intact {start}; last hash {report.last_hash}"
            )
        for note in report.notes:
            print(f"  note: {note}")
        for proof in report.proofs:
            print(f"  {proof}")
        if report.ok:
            continue
        status = 1
        first = report.problems[0]
        print(
            f"BROKEN: {report.chain}: first problem at {first.file}:{first.line}"
            f" ({first.kind}); {len(report.problems)} problem(s) in {report.events} events",
            file=sys.stderr,
        )
    return status


def cmd_query(a: argparse.Namespace) -> int:
    import orjson

    from egress.audit import query as q
    from egress.audit.escape import json_safe

    con = q.connect(log_paths(a))
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
            line = orjson.dumps(dict(zip(cols, row, strict=True)), default=str).decode()
            out.write(json_safe(line).encode() + b"\n")
        return 0
    print_table(cols, rows)
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    logs = parser.add_subparsers(dest="sub", required=True)
    ver = logs.add_parser(
        "verify", help="check the hash chain: edits, deletions, reordering, truncation"
    )
    ver.add_argument("paths", nargs="*", help="log files or directories [state/decisions.log]")
    ver.add_argument("--max-problems", type=int, default=20)
    ver.add_argument(
        "--key-file", help="the writer's chain key (STATE/log.key): checks every MAC and seal"
    )
    ver.add_argument(
        "--anchor",
        action="append",
        help="anchor file the writer shipped (--log-anchor); repeatable",
    )
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
