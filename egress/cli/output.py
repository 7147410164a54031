"""What the log and policy commands share: the default log path and one table printer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_LOG = Path("state/decisions.log")


def log_paths(a: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in a.paths] or [DEFAULT_LOG]


def print_table(columns: list[str], rows: list[tuple[Any, ...]], title: str | None = None) -> None:
    """A rich table on a terminal; tab-separated lines when piped (for grep, cut, awk). Every
    cell is escaped: agent-sent bytes never reach the terminal as control characters, and a
    cell is plain text, never rich markup."""
    from egress.audit.escape import printable

    if not sys.stdout.isatty():
        if title:
            print(f"# {printable(title)}")
        print("\t".join(printable(c) for c in columns))
        for row in rows:
            print("\t".join(printable(v) for v in row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(Text(printable(c)), overflow="fold")
    for row in rows:
        table.add_row(*(Text(printable(v)) for v in row))
    Console().print(table)
