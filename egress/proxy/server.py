"""Assemble and run the proxy: mitmproxy core + the egress pipeline, with graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import types
from pathlib import Path
from typing import Any

import certifi
from aiohttp import web
from mitmproxy import ctx, options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from egress import reasons
from egress.audit import DecisionLogWriter
from egress.audit.chain import load_key
from egress.audit.logfile import LogLocked, lock_fd
from egress.destination.addresses import AddressPolicy
from egress.destination.resolver import Resolver
from egress.errors import ConfigError
from egress.identity.credentials import IdentitiesFile
from egress.kube.agents import KillSwitchWatch
from egress.policy.cache import CachedEngine, engine_stats
from egress.policy.decision import PolicyEngine
from egress.policy.engines import make_engine
from egress.policy.kill import KillSet, KillSwitchEngine
from egress.proxy import addons, body_budget, ca, guards, h2_guard, mitm_patches
from egress.proxy.addons.sessions import Timeouts
from egress.proxy.cert_cache import CertCache
from egress.proxy.config import ServeConfig
from egress.proxy.telemetry import Telemetry, admin_app, start_admin
from egress.secrets.factory import make_store
from egress.secrets.vault import VaultSecretStore

SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def upstream_trust_bundle(
    state_dir: Path, extra: Path | None, worker: int | None = None
) -> tuple[Path, int]:
    """System trust store + the configured extra bundle, as one file for OpenSSL, written and
    held under an exclusive lock (the descriptor returned) so that a second ``serve`` on the
    same state dir cannot rewrite it under this one. Each worker owns its own copy."""
    system = next((Path(p) for p in SYSTEM_BUNDLES if Path(p).is_file()), None)
    base = system or Path(ssl.get_default_verify_paths().cafile or certifi.where())
    data = base.read_bytes()
    if extra is not None:
        data += b"\n" + extra.read_bytes()
    state_dir.mkdir(parents=True, exist_ok=True)
    out = state_dir / ("upstream-trust.pem" if worker is None else f"upstream-trust.w{worker}.pem")
    fd = os.open(out, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        lock_fd(fd, out)
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except BaseException:
        os.close(fd)
        raise
    return out, fd


def _locked(e: LogLocked) -> ConfigError:
    return ConfigError(
        f"{e}: one process per decision log and state dir (give this one its own --state-dir"
        " or --decision-log)",
        reasons.STATE_LOCKED,
    )


def open_decision_log(cfg: ServeConfig) -> DecisionLogWriter:
    """The writer, its file opened and locked now (a second serve fails before listening).
    With the log on stdout, the process's own messages move to stderr so the stream holds
    decision events only, and a stalled reader of it can only stall the writer thread."""
    stdout_fd = None
    if cfg.decision_log is None:
        stdout_fd = os.dup(1)
        os.dup2(2, 1)
    try:
        key = load_key(cfg.log_key_file, create=True) if cfg.log_key_file else None
    except (OSError, ValueError) as e:
        raise ConfigError(f"--log-key-file: {e}") from e
    writer = DecisionLogWriter(
        cfg.decision_log,
        fsync=cfg.log_fsync,
        max_bytes=cfg.log_max_bytes,
        max_age=cfg.log_max_age,
        compress=cfg.log_compress,
        queue_max=cfg.log_queue_max,
        key=key,
        anchor=cfg.log_anchor,
        anchor_interval=cfg.log_anchor_interval,
        stdout_fd=stdout_fd,
    )
    writer.open()  # error[state_locked] when another process writes this log
    return writer


def _listen_with_reuse_port() -> None:
    """Make mitmproxy's TCP listeners share the port with sibling workers (SO_REUSEPORT)."""
    from mitmproxy.proxy import mode_servers

    original = asyncio.start_server

    async def start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        kwargs.setdefault("reuse_port", True)
        return await original(*args, **kwargs)

    mode_servers.asyncio = types.SimpleNamespace(  # type: ignore[attr-defined,assignment]
        **{**vars(asyncio), "start_server": start_server}
    )


def make_master(opts: options.Options) -> Master:
    """mitmproxy with only the addons a forward proxy needs.

    mitmdump loads ~35 addons (replay, export, map-local, scripts, ...) and every hook of every
    flow is offered to each of them: profiling showed ~330 addon invocations per request. The
    proxy keeps the core, the server, protocol detection, TLS and h2c refusal; the egress
    pipeline is added after them.
    """
    master = Master(opts, with_termlog=True)
    master.addons.add(
        core.Core(),
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        errorcheck.ErrorCheck(),
    )
    return master


class Ready:
    """Prints where the proxy listens once sockets are bound (tests and users wait for it)."""

    def __init__(self, banner: str, address_policy: AddressPolicy) -> None:
        self.banner = banner
        self.address_policy = address_policy

    def running(self) -> None:
        ps = ctx.master.addons.get("proxyserver")
        addrs = ps.listen_addrs() if ps else []
        for host, port, *_ in addrs:
            # the bound port (--listen :0 picks one): the proxy never dials itself
            self.address_policy.add_listen_address(host, port)
            print(f"egress: listening on {host}:{port}", flush=True)
        print(self.banner, flush=True)


def _banner(cfg: ServeConfig, info: ca.CAInfo, engine: str) -> str:
    return "\n".join(
        [
            f"egress: policy engine {engine}; CA {info.cert_path} ({info.key_type})",
            f"egress: CA fingerprint SHA256 {info.fingerprint_sha256}",
            "egress: point an agent at it:",
            f"  egress agents add --user alice@example.com --agent triage-bot "
            f"--identities {cfg.identities}",
            "  export HTTPS_PROXY=http://triage-bot:<token>@"
            f"{cfg.listen_host}:{cfg.listen_port} HTTP_PROXY=$HTTPS_PROXY",
            f"  export SSL_CERT_FILE={info.cert_path.resolve()}",
            f"egress: decision log {cfg.decision_log or 'stdout'}",
            "egress: secrets from "
            + (f"Vault {cfg.vault.addr}" if cfg.vault else f"{cfg.secrets_file}"),
            "egress: ready",
        ]
    )


async def serve(cfg: ServeConfig) -> int:
    info = ca.load_ca_info(cfg.ca_dir)
    writer = open_decision_log(cfg)  # first: a locked log stops a second serve right here
    try:
        trust, trust_fd = upstream_trust_bundle(cfg.state_dir, cfg.upstream_ca, cfg.worker_index)
    except LogLocked as e:
        raise _locked(e) from e
    # the raw head may be a little larger than the forwarded fields (request line, CRLFs)
    guards.install(cfg.max_header_bytes + 32 * 1024)
    h2_guard.install()  # bounds on HTTP/2 streams per connection (rapid reset)
    mitm_patches.apply()  # version-pinned removals of per-request work (see the module)
    budget = body_budget.BodyBudget(cfg.body_memory_limit)
    body_budget.install(budget)
    if not cfg.policy_dir.is_dir() and not cfg.opa_url:
        raise ConfigError(f"--policy-dir {cfg.policy_dir} is not a directory", "policy_missing")
    engine, kills, watch = await _start_engine(cfg)
    identities = IdentitiesFile(cfg.identities)
    store = make_store(cfg.vault, cfg.secrets_file, cfg.secrets_key_file)
    await writer.start()

    master = _make_master(cfg, trust)
    telemetry = Telemetry()
    address_policy = AddressPolicy.from_strings(cfg.allow_cidr, cfg.deny_cidr)
    address_policy.add_listen_address(cfg.listen_host, cfg.listen_port)
    resolver = Resolver(address_policy, dns_server=cfg.dns_server)
    master.addons.add(
        *addons.pipeline(
            identities=identities,
            engine=engine,
            store=store,
            writer=writer,
            resolver=resolver,
            proxy_id=_replica_id(cfg),
            on_log_failure=cfg.on_log_failure,
            report_only=cfg.report_only,
            header_limits=(cfg.max_header_bytes, cfg.max_headers),
            mask_query=cfg.log_mask in ("query", "both"),
            mask_headers=cfg.log_mask in ("headers", "both"),
            observers=[telemetry.observe],
            kills=kills,
            timeouts=Timeouts(cfg.request_head_timeout, cfg.idle_timeout, cfg.tunnel_idle_timeout),
            max_conns_per_agent=cfg.max_conns_per_agent,
            max_conns_unauthenticated=cfg.max_conns_unauthenticated,
            max_conns_unauthenticated_per_source=cfg.max_conns_unauthenticated_per_source,
            body_budget=budget,
        ),
        Ready(_banner(cfg, info, engine.name), address_policy),
    )
    admin = await _start_admin(cfg, telemetry, writer, engine, watch)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    loop.add_signal_handler(signal.SIGHUP, _on_sighup, writer, identities, engine)
    try:
        await master.run()
    finally:
        if admin is not None:
            await admin.cleanup()
        await writer.close()  # idempotent: DecisionLog.done drained it already
        await engine.close()
        if watch is not None:
            await watch.close()
        if isinstance(store, VaultSecretStore):
            await store.close()
        os.close(trust_fd)
    print(f"egress: stopped; {writer.written} decision events written", file=sys.stderr, flush=True)
    return 0


async def _start_engine(
    cfg: ServeConfig,
) -> tuple[CachedEngine | KillSwitchEngine, KillSet, KillSwitchWatch | None]:
    """The policy engine, cached, and behind the kill switch when ``--kill-watch`` is set."""
    kills = KillSet()
    watch = None
    if cfg.kill_watch:
        try:
            watch = KillSwitchWatch.from_flag(cfg.kill_watch, kills)
        except ValueError as e:
            raise ConfigError(str(e), "config_invalid") from e
    cached = make_engine(cfg)
    await cached.start()
    if watch is None:
        return cached, kills, None
    watch.start()
    return KillSwitchEngine(cached, kills), kills, watch


def _make_master(cfg: ServeConfig, trust: Path) -> Master:
    opts = options.Options(
        listen_host=cfg.listen_host,
        listen_port=cfg.listen_port,
        confdir=str(cfg.ca_dir),
    )
    if cfg.reuse_port:
        _listen_with_reuse_port()
    master = make_master(opts)
    master.addons.add(CertCache(cfg.cert_cache_size))  # after tlsconfig, which builds the store
    master.options.update(
        connection_strategy="lazy",
        ssl_insecure=False,
        ssl_verify_upstream_trusted_ca=str(trust),
        body_size_limit=cfg.body_size_limit,
        http2=True,
        websocket=True,
        # no opaque TCP relay: what is not TLS or HTTP inside a tunnel is refused, not relayed
        rawtcp=False,
        termlog_verbosity="warn",
    )
    return master


async def _start_admin(
    cfg: ServeConfig,
    telemetry: Telemetry,
    writer: DecisionLogWriter,
    engine: CachedEngine | KillSwitchEngine,
    watch: KillSwitchWatch | None,
) -> web.AppRunner | None:
    if cfg.admin_listen is None:
        return None
    app = admin_app(
        telemetry,
        extra=lambda: {
            "egress_log_queue_depth": writer.pending(),
            "egress_log_events_written_total": writer.written,
            "egress_log_write_errors_total": writer.write_errors,
            "egress_log_dropped_total": writer.dropped,
            "egress_log_healthy": int(writer.healthy),
            "egress_decision_cache_hits_total": engine_stats(engine).get("hits", 0),
            "egress_decision_cache_misses_total": engine_stats(engine).get("misses", 0),
        },
        info=lambda: {"engine": engine.name, "revision": str(getattr(engine, "revision", ""))},
        ready=lambda: _not_ready(engine, writer, watch),
    )
    admin, admin_port = await start_admin(app, *cfg.admin_listen)
    print(f"egress: admin listening on {cfg.admin_listen[0]}:{admin_port}", flush=True)
    return admin


def _not_ready(
    engine: PolicyEngine, writer: DecisionLogWriter, watch: KillSwitchWatch | None = None
) -> list[str]:
    problems = []
    if watch is not None and not watch.synced.is_set():
        problems.append("kill-switch watch has not listed Agents yet")
    revision = str(getattr(engine, "revision", ""))
    if not revision or "unavailable" in revision or "unknown" in revision:
        problems.append(f"policy not loaded ({engine.name}: {revision or 'no revision'})")
    if not writer.healthy:
        problems.append(f"decision log not writable: {writer.problem()}")
    return problems


def _on_sighup(writer: DecisionLogWriter, identities: IdentitiesFile, engine: object) -> None:
    """SIGHUP (logrotate's postrotate): reopen the decision log by its path, and reload the
    identities and the policy now rather than at their next periodic check."""
    writer.request_reopen()
    identities.records()  # re-reads the file when it changed
    while engine is not None:  # kill switch -> cache -> engine: the innermost reloads files
        reload = getattr(engine, "maybe_reload", None)
        if reload is not None:
            reload(force=True)
        engine = getattr(engine, "engine", None) or getattr(engine, "inner", None)
    print("egress: SIGHUP: decision log reopened, identities and policy reloaded", flush=True)


def _replica_id(cfg: ServeConfig) -> str:
    import socket

    base = cfg.proxy_id or socket.gethostname()
    return base if cfg.worker_index is None else f"{base}-w{cfg.worker_index}"
