"""``egress operator``: the Kubernetes operator for Agent resources (kopf loads only here)."""

from __future__ import annotations

import argparse


def _cmd_operator(a: argparse.Namespace) -> int:
    import kopf

    import egress.operator.handlers  # noqa: F401 (registers the handlers)

    kopf.configure(verbose=a.verbose)  # kopf.run() alone sets up no logging at all
    kopf.run(clusterwide=True, standalone=a.standalone, liveness_endpoint=a.liveness)
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint"
    )
    parser.set_defaults(func=_cmd_operator)
