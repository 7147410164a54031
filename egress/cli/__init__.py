"""The ``egress`` command line: one module per command group, each imported only when run."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from egress.cli.main import main as run

    return run(argv)
