"""``egress gateway``: the LLM gateway. uvicorn, starlette and httpx load only for this command."""

from __future__ import annotations

import argparse
import asyncio


def _cmd_gateway(a: argparse.Namespace) -> int:
    from egress.gateway.server import run_gateway

    return asyncio.run(run_gateway(a))


def configure(parser: argparse.ArgumentParser) -> None:
    from egress.gateway.config import add_gateway_arguments

    parser.description = "Run the LLM gateway. Every flag has an env var."
    add_gateway_arguments(parser)
    parser.set_defaults(func=_cmd_gateway)
