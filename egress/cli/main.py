"""The ``egress`` command line: ca, agents, secrets, serve.

Every error a user can meet prints ``error[<reason>]: <message>`` and exits 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from egress.errors import EgressError

# command -> (module with ``configure(parser)``, one-line help), in the order ``--help`` lists
# them. A command's module, and the heavy libraries it runs on, load only when it is chosen.
COMMANDS: dict[str, tuple[str, str]] = {
    "ca": ("egress.cli.ca", "the platform CA"),
    "agents": ("egress.cli.agents", "agent identities"),
    "secrets": ("egress.cli.secrets", "proxy-only secrets"),
    "logs": ("egress.cli.logs", "decision logs"),
    "policy": ("egress.cli.policy", "policy tools"),
    "operator": ("egress.cli.operator", "run the Kubernetes operator for Agent resources"),
    "gateway": ("egress.cli.gateway", "run the LLM gateway (OpenAI-compatible)"),
    "serve": ("egress.cli.serve", "run the proxy"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named on this command line (the top parser has no options but -h)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser when ``argv`` is None; else every command is listed (for ``--help``) but
    only the one ``argv`` names gets its arguments, so only its module is imported."""
    p = argparse.ArgumentParser(prog="egress", description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    chosen = None if argv is None else _chosen(argv)
    for name, (module, help_) in COMMANDS.items():
        parser = sub.add_parser(name, help=help_)
        if argv is None or name == chosen:
            importlib.import_module(module).configure(parser)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        return int(args.func(args))
    except EgressError as e:
        print(f"error[{e.reason}]: {e.message}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error[invalid_argument]: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`egress logs query ... | head`): not an error, no traceback
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
