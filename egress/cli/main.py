"""The ``egress`` command line: ca, agents, secrets, serve.

Every error a user can meet prints ``error[<reason>]: <message>`` and exits 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

from egress.cli import logs as logs_cli
from egress.errors import EgressError
from egress.identity.credentials import IdentitiesFile
from egress.proxy import ca
from egress.proxy.config import ServeConfig, add_serve_arguments
from egress.secrets.factory import add_vault_arguments, open_store
from egress.secrets.local import LocalSecretStore
from egress.secrets.model import SecretRecord, SecretRef, secret_path
from egress.secrets.vault import VaultSecretStore

DEFAULT_STATE = Path("state")


def _cmd_ca_init(a: argparse.Namespace) -> int:
    info = ca.init_ca(Path(a.dir), key_type=a.key_type, rsa_bits=a.rsa_bits, force=a.force)
    print(f"CA certificate: {info.cert_path}")
    print(f"CA key (0600):  {info.key_path}")
    print(f"key type:       {info.key_type}")
    print(f"fingerprint:    SHA256 {info.fingerprint_sha256}")
    return 0


def _cmd_ca_show(a: argparse.Namespace) -> int:
    info = ca.load_ca_info(Path(a.dir))
    print(f"CA certificate: {info.cert_path}")
    print(f"key type:       {info.key_type}")
    print(f"fingerprint:    SHA256 {info.fingerprint_sha256}")
    return 0


def _identities(a: argparse.Namespace) -> IdentitiesFile:
    return IdentitiesFile(Path(a.identities or Path(a.state_dir) / "identities.json"))


def _cmd_agents_add(a: argparse.Namespace) -> int:
    identity, token = _identities(a).add(a.user, a.agent, a.namespace)
    print(f"agent {identity.agent} of {identity.user} registered (namespace {identity.namespace})")
    print("proxy URL (shown once; only its hash is stored):")
    print(f"http://{identity.agent}:{token}@{a.proxy}")
    return 0


def _cmd_agents_list(a: argparse.Namespace) -> int:
    for r in _identities(a).records():
        print(f"{r.user}\t{r.agent}\t{r.namespace}")
    return 0


def _cmd_agents_revoke(a: argparse.Namespace) -> int:
    if not _identities(a).revoke(a.user, a.agent):
        print(f"error[agent_unknown]: no agent {a.agent} for {a.user}", file=sys.stderr)
        return 2
    print(f"revoked {a.user}/{a.agent}")
    return 0


def _store(a: argparse.Namespace) -> LocalSecretStore | VaultSecretStore:
    return open_store(a)


def _where(store: LocalSecretStore | VaultSecretStore, a: argparse.Namespace) -> str:
    if isinstance(store, VaultSecretStore):
        return f"{store.full_path(a.user, a.agent, a.name)} in Vault {a.vault_addr}"
    return secret_path(a.user, a.agent, a.name)


def _read_value() -> str | None:
    value = sys.stdin.read().rstrip("\r\n")
    if not value or any(c in value for c in "\r\n\x00"):
        print(
            "error[secret_invalid]: give the value on stdin, one line, no NUL/CR/LF",
            file=sys.stderr,
        )
        return None
    return value


def _ref_of(result: SecretRecord | SecretRef) -> SecretRef:
    return result.ref if isinstance(result, SecretRecord) else result


def _cmd_secrets_put(a: argparse.Namespace) -> int:
    value = _read_value()
    if value is None:
        return 2
    hosts = [h.strip() for h in a.hosts.split(",") if h.strip()]
    store = _store(a)
    hints = {k: v for k, v in (("header", a.header), ("format", a.format)) if v}
    ref = _ref_of(
        store.put(
            a.user,
            a.agent,
            a.name,
            value,
            hosts,
            placeholder_prefix=a.placeholder_prefix,
            hints=hints,
            allow_plaintext=a.allow_plaintext,
        )
    )
    print(f"stored {_where(store, a)} (hosts: {', '.join(ref.hosts)})")
    if ref.allow_plaintext:
        print("warning: this secret may be sent over plain http, readable on the wire")
    if hints.get("header") or hints.get("format"):
        shown = (hints.get("format") or "{placeholder}").replace("{placeholder}", ref.placeholder)
        print(f"agent sends it as: {hints.get('header') or 'Authorization'}: {shown}")
    print("placeholder for the agent (not a secret):")
    print(ref.placeholder)
    return 0


def _cmd_secrets_rotate(a: argparse.Namespace) -> int:
    value = _read_value()
    if value is None:
        return 2
    store = _store(a)
    ref = _ref_of(store.rotate(a.user, a.agent, a.name, value))
    print(f"rotated {_where(store, a)}; the agent keeps its placeholder {ref.placeholder}")
    return 0


def _cmd_secrets_list(a: argparse.Namespace) -> int:
    store = _store(a)
    for ref in store.list():
        print(
            f"{secret_path(ref.user, ref.agent, ref.name)}\thosts={','.join(ref.hosts)}\t"
            f"placeholder={ref.placeholder}"
            + ("\tallow_plaintext=yes" if ref.allow_plaintext else "")
        )
    return 0


def _cmd_secrets_delete(a: argparse.Namespace) -> int:
    store = _store(a)
    if not store.delete(a.user, a.agent, a.name):
        print("error[secret_unknown]: no such secret", file=sys.stderr)
        return 2
    print(f"deleted {_where(store, a)}")
    return 0


def _cmd_serve(a: argparse.Namespace) -> int:
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


def _cmd_operator(a: argparse.Namespace) -> int:
    import kopf

    import egress.operator.handlers  # noqa: F401 (registers the handlers)

    kopf.configure(verbose=a.verbose)  # kopf.run() alone sets up no logging at all
    kopf.run(clusterwide=True, standalone=a.standalone, liveness_endpoint=a.liveness)
    return 0


def _cmd_gateway(a: argparse.Namespace) -> int:
    from egress.gateway.server import run_gateway

    return asyncio.run(run_gateway(a))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="egress", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    pca = sub.add_parser("ca", help="the platform CA").add_subparsers(dest="sub", required=True)
    init = pca.add_parser("init", help="generate the platform CA (ECDSA P-256 by default)")
    init.add_argument("--dir", default="certs")
    init.add_argument("--key-type", choices=["ecdsa", "rsa"], default="ecdsa")
    init.add_argument("--rsa-bits", type=int, default=3072)
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_cmd_ca_init)
    show = pca.add_parser("show", help="print the CA path and fingerprint")
    show.add_argument("--dir", default="certs")
    show.set_defaults(func=_cmd_ca_show)

    def state_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--state-dir", default=str(DEFAULT_STATE))

    pag = sub.add_parser("agents", help="agent identities").add_subparsers(
        dest="sub", required=True
    )
    add = pag.add_parser("add", help="register an agent and print its proxy URL")
    add.add_argument("--user", required=True, help="owner, e.g. alice@example.com")
    add.add_argument("--agent", required=True, help="agent name, e.g. triage-bot")
    add.add_argument("--namespace", default=None)
    add.add_argument("--proxy", default="127.0.0.1:8080", help="host:port agents dial")
    for sp, fn in (
        (add, _cmd_agents_add),
        (pag.add_parser("list", help="list agents"), _cmd_agents_list),
    ):
        sp.add_argument("--identities", default=None)
        state_args(sp)
        sp.set_defaults(func=fn)
    rev = pag.add_parser("revoke", help="revoke an agent's credential")
    rev.add_argument("--user", required=True)
    rev.add_argument("--agent", required=True)
    rev.add_argument("--identities", default=None)
    state_args(rev)
    rev.set_defaults(func=_cmd_agents_revoke)

    psec = sub.add_parser("secrets", help="proxy-only secrets").add_subparsers(
        dest="sub", required=True
    )
    put = psec.add_parser("put", help="store a secret (value on stdin), print its placeholder")
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
    put.set_defaults(func=_cmd_secrets_put)
    lst = psec.add_parser("list", help="list secrets (never values)")
    lst.set_defaults(func=_cmd_secrets_list)
    dele = psec.add_parser("delete", help="delete a secret")
    dele.add_argument("--user", required=True)
    dele.add_argument("--agent", required=True)
    dele.add_argument("--name", required=True)
    dele.set_defaults(func=_cmd_secrets_delete)
    rot = psec.add_parser("rotate", help="new value (stdin), same placeholder and hosts")
    rot.add_argument("--user", required=True)
    rot.add_argument("--agent", required=True)
    rot.add_argument("--name", required=True)
    rot.set_defaults(func=_cmd_secrets_rotate)
    for sp in (put, lst, dele, rot):
        state_args(sp)
        sp.add_argument("--secrets-file", default=None)
        sp.add_argument("--secrets-key-file", default=None)
        add_vault_arguments(sp)

    logs_cli.register(sub)

    op = sub.add_parser("operator", help="run the Kubernetes operator for Agent resources")
    op.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    op.add_argument("--verbose", action="store_true", help="debug logging")
    op.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint"
    )
    op.set_defaults(func=_cmd_operator)

    gw = sub.add_parser(
        "gateway",
        help="run the LLM gateway (OpenAI-compatible)",
        description="Run the LLM gateway. Every flag has an env var.",
    )
    from egress.gateway.server import add_gateway_arguments

    add_gateway_arguments(gw)
    gw.set_defaults(func=_cmd_gateway)

    srv = sub.add_parser(
        "serve",
        help="run the proxy",
        description="Run the egress proxy. Every flag has an env var.",
    )
    add_serve_arguments(srv)
    add_vault_arguments(srv)
    srv.set_defaults(func=_cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
