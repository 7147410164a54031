"""``egress serve``: the proxy. mitmproxy is imported only when the proxy runs."""

from __future__ import annotations

import argparse
import asyncio
import sys


def _cmd_serve(a: argparse.Namespace) -> int:
    from egress.proxy.config import ServeConfig

    cfg = ServeConfig.from_args(a)
    if cfg.workers > 1:
        from egress.proxy.workers import supervise

        return supervise(
            sys.argv[1:],
            cfg.workers,
            cfg.listen_host,
            cfg.listen_port,
            cfg.decision_log,
        )
    from egress.proxy.server import serve  # mitmproxy import is heavy: only for serve

    return asyncio.run(serve(cfg))


def configure(parser: argparse.ArgumentParser) -> None:
    from egress.proxy.config import add_serve_arguments
    from egress.secrets.factory import add_vault_arguments

    parser.description = "Run the egress proxy. Every flag has an env var."
    add_serve_arguments(parser)
    add_vault_arguments(parser)
    parser.set_defaults(func=_cmd_serve)
