"""``egress agents add|list|revoke``: agent identities in the identities file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from egress.cli.state import add_state_dir

if TYPE_CHECKING:
    from egress.identity.credentials import IdentitiesFile


def _identities(a: argparse.Namespace) -> IdentitiesFile:
    from egress.identity.credentials import IdentitiesFile
    from egress.options import IDENTITIES_FILE, state_file

    return IdentitiesFile(state_file(a.identities, Path(a.state_dir), IDENTITIES_FILE))


def _cmd_add(a: argparse.Namespace) -> int:
    identity, token = _identities(a).add(a.user, a.agent, a.namespace)
    print(f"agent {identity.agent} of {identity.user} registered (namespace {identity.namespace})")
    print("proxy URL (shown once; only its hash is stored):")
    print(f"http://{identity.agent}:{token}@{a.proxy}")
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    for r in _identities(a).records():
        print(f"{r.user}\t{r.agent}\t{r.namespace}")
    return 0


def _cmd_revoke(a: argparse.Namespace) -> int:
    if not _identities(a).revoke(a.user, a.agent):
        print(f"error[agent_unknown]: no agent {a.agent} for {a.user}", file=sys.stderr)
        return 2
    print(f"revoked {a.user}/{a.agent}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    add = sub.add_parser("add", help="register an agent and print its proxy URL")
    add.add_argument("--user", required=True, help="owner, e.g. alice@example.com")
    add.add_argument("--agent", required=True, help="agent name, e.g. triage-bot")
    add.add_argument("--namespace", default=None)
    add.add_argument("--proxy", default="127.0.0.1:8080", help="host:port agents dial")
    for sp, fn in ((add, _cmd_add), (sub.add_parser("list", help="list agents"), _cmd_list)):
        sp.add_argument("--identities", default=None)
        add_state_dir(sp)
        sp.set_defaults(func=fn)
    rev = sub.add_parser("revoke", help="revoke an agent's credential")
    rev.add_argument("--user", required=True)
    rev.add_argument("--agent", required=True)
    rev.add_argument("--identities", default=None)
    add_state_dir(rev)
    rev.set_defaults(func=_cmd_revoke)
