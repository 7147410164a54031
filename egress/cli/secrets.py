"""``egress secrets put|rotate|list|delete``: proxy-only secrets, in the local file or Vault.

Every backend answers through the one ``SecretAdmin`` protocol, so no command here knows which
backend it talks to; the backend modules load only when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from egress.cli.state import add_state_dir

if TYPE_CHECKING:
    from egress.secrets.model import SecretAdmin


def _store(a: argparse.Namespace) -> SecretAdmin:
    from egress.secrets.factory import open_store

    return open_store(a)


def _read_value() -> str | None:
    value = sys.stdin.read().rstrip("\r\n")
    if not value or any(c in value for c in "\r\n\x00"):
        print(
            "error[secret_invalid]: give the value on stdin, one line, no NUL/CR/LF",
            file=sys.stderr,
        )
        return None
    return value


def _cmd_put(a: argparse.Namespace) -> int:
    value = _read_value()
    if value is None:
        return 2
    hosts = [h.strip() for h in a.hosts.split(",") if h.strip()]
    store = _store(a)
    hints = {k: v for k, v in (("header", a.header), ("format", a.format)) if v}
    ref = store.put(
        a.user,
        a.agent,
        a.name,
        value,
        hosts,
        placeholder_prefix=a.placeholder_prefix,
        hints=hints,
        allow_plaintext=a.allow_plaintext,
    )
    print(f"stored {store.location(a.user, a.agent, a.name)} (hosts: {', '.join(ref.hosts)})")
    if ref.allow_plaintext:
        print("warning: this secret may be sent over plain http, readable on the wire")
    if hints.get("header") or hints.get("format"):
        shown = (hints.get("format") or "{placeholder}").replace("{placeholder}", ref.placeholder)
        print(f"agent sends it as: {hints.get('header') or 'Authorization'}: {shown}")
    print("placeholder for the agent (not a secret):")
    print(ref.placeholder)
    return 0


def _cmd_rotate(a: argparse.Namespace) -> int:
    value = _read_value()
    if value is None:
        return 2
    store = _store(a)
    ref = store.rotate(a.user, a.agent, a.name, value)
    where = store.location(a.user, a.agent, a.name)
    print(f"rotated {where}; the agent keeps its placeholder {ref.placeholder}")
    return 0


def _cmd_list(a: argparse.Namespace) -> int:
    from egress.secrets.model import secret_path

    for ref in _store(a).list():
        print(
            f"{secret_path(ref.user, ref.agent, ref.name)}\thosts={','.join(ref.hosts)}\t"
            f"placeholder={ref.placeholder}"
            + ("\tallow_plaintext=yes" if ref.allow_plaintext else "")
        )
    return 0


def _cmd_delete(a: argparse.Namespace) -> int:
    store = _store(a)
    if not store.delete(a.user, a.agent, a.name):
        print("error[secret_unknown]: no such secret", file=sys.stderr)
        return 2
    print(f"deleted {store.location(a.user, a.agent, a.name)}")
    return 0


def _add_put(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    put = sub.add_parser("put", help="store a secret (value on stdin), print its placeholder")
    put.add_argument("--user", required=True)
    put.add_argument("--agent", required=True)
    put.add_argument("--name", required=True)
    put.add_argument("--hosts", required=True, help="comma-separated host globs it may go to")
    put.add_argument(
        "--placeholder-prefix", default="", help="keep a token shape, e.g. ghp_ or sk-"
    )
    put.add_argument("--header", default="", help="hint: header the agent puts it in")
    put.add_argument(
        "--format", default="", help="hint: how it is presented, e.g. 'Bearer {placeholder}'"
    )
    put.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="let the proxy send it over plain http (refused with secret_plaintext_refused "
        "otherwise); readable by anyone on the network path",
    )
    put.set_defaults(func=_cmd_put)
    return put


def configure(parser: argparse.ArgumentParser) -> None:
    from egress.secrets.factory import add_vault_arguments

    sub = parser.add_subparsers(dest="sub", required=True)
    put = _add_put(sub)
    lst = sub.add_parser("list", help="list secrets (never values)")
    lst.set_defaults(func=_cmd_list)
    dele = sub.add_parser("delete", help="delete a secret")
    rot = sub.add_parser("rotate", help="new value (stdin), same placeholder and hosts")
    for sp, fn in ((dele, _cmd_delete), (rot, _cmd_rotate)):
        sp.add_argument("--user", required=True)
        sp.add_argument("--agent", required=True)
        sp.add_argument("--name", required=True)
        sp.set_defaults(func=fn)
    for sp in (put, lst, dele, rot):
        add_state_dir(sp)
        sp.add_argument("--secrets-file", default=None)
        sp.add_argument("--secrets-key-file", default=None)
        add_vault_arguments(sp)
