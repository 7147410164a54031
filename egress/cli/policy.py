"""``egress policy replay``: re-decide logged traffic with a candidate policy, show what flips."""

from __future__ import annotations

import argparse
from pathlib import Path

from egress.cli.output import log_paths, print_table


def cmd_replay(a: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from egress.audit.replay import replay

    paths = log_paths(a)
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
        print_table(["agent", "host", "flips", "example", "reason"], rows, title=title)
    return 1 if report.deny_to_allow else 0


def configure(parser: argparse.ArgumentParser) -> None:
    pol = parser.add_subparsers(dest="sub", required=True)
    rep = pol.add_parser("replay", help="re-decide logged traffic with a candidate policy")
    rep.add_argument("paths", nargs="*", metavar="LOGS", help="decision logs")
    rep.add_argument("--policy", required=True, help="candidate policy directory")
    rep.add_argument("--data", help="candidate data file")
    rep.set_defaults(func=cmd_replay)
