"""Serve configuration: the proxy's option rows and the typed ``ServeConfig`` built from them.

The mechanism (rows, env var defaults, value parsers) and the rows the gateway shares live in
``egress.options``; this module only lists the proxy's rows and parses them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egress.errors import ConfigError
from egress.options import (
    DATA_FILE,
    IDENTITIES,
    IDENTITIES_FILE,
    OPA_TIMEOUT,
    OPA_URL,
    POLICY_DIR,
    POLICY_WORKERS,
    SECRETS,
    SECRETS_FILE,
    SECRETS_KEY,
    SECRETS_KEY_FILE,
    STATE_DIR,
    Option,
    add_options,
    choice,
    cidrs,
    flag,
    number,
    parse_hostport,
    seconds,
    size,
    state_file,
)
from egress.secrets.factory import VaultConfig

__all__ = ["SERVE_OPTIONS", "ServeConfig", "add_serve_arguments"]

# Defaults keep all runtime state under --state-dir.
SERVE_OPTIONS: list[Option] = [
    Option("--listen", "EGRESS_LISTEN", "127.0.0.1:8080", "address:port to listen on"),
    STATE_DIR,
    POLICY_DIR,
    DATA_FILE,
    IDENTITIES,
    SECRETS,
    SECRETS_KEY,
    Option("--ca-dir", "EGRESS_CA_DIR", "certs", "directory holding the platform CA"),
    Option(
        "--decision-log",
        "EGRESS_DECISION_LOG",
        None,
        "decision log file, '-' for stdout [STATE/decisions.log]",
    ),
    Option(
        "--upstream-ca",
        "EGRESS_UPSTREAM_CA",
        None,
        "extra PEM bundle trusted for upstream TLS, on top of the system store",
    ),
    OPA_URL,
    OPA_TIMEOUT,
    POLICY_WORKERS,
    Option("--body-size-limit", "EGRESS_BODY_SIZE_LIMIT", "64m", "largest request/response body"),
    Option(
        "--max-header-bytes",
        "EGRESS_MAX_HEADER_BYTES",
        "65536",
        "largest request head forwarded (431 beyond)",
    ),
    Option(
        "--max-headers", "EGRESS_MAX_HEADERS", "128", "most header fields forwarded (431 beyond)"
    ),
    Option("--proxy-id", "EGRESS_PROXY_ID", None, "label of this replica in decision events"),
    Option(
        "--workers",
        "EGRESS_WORKERS",
        "1",
        "proxy processes sharing the listen port (SO_REUSEPORT); one decision log each",
    ),
    Option("--worker-index", "EGRESS_WORKER_INDEX", None, "set by the supervisor for each worker"),
    Option("--reuse-port", "EGRESS_REUSE_PORT", "false", "bind the listen port with SO_REUSEPORT"),
    Option(
        "--log-fsync",
        "EGRESS_LOG_FSYNC",
        "interval",
        "always: event on disk before the answer; interval: fsync every second; never",
    ),
    Option("--log-max-bytes", "EGRESS_LOG_MAX_BYTES", "104857600", "rotate the log past this size"),
    Option(
        "--log-max-age",
        "EGRESS_LOG_MAX_AGE",
        "0",
        "rotate the log after this many seconds (0: off)",
    ),
    Option("--log-compress", "EGRESS_LOG_COMPRESS", "true", "gzip rotated log files"),
    Option(
        "--log-mask",
        "EGRESS_LOG_MASK",
        "query",
        "input fields whose values are masked in events: query, headers, both or none",
    ),
    Option(
        "--report-only",
        "EGRESS_REPORT_ONLY",
        "false",
        "report mode for everyone: log would_deny, allow (per agent: data.egress.report_only)",
    ),
    Option(
        "--kill-watch",
        "EGRESS_KILL_WATCH",
        None,
        "follow Agent resources for killSwitch on the Kubernetes API: in-cluster, or"
        " https://API,TOKEN_FILE[,CA_FILE] (kills apply within the API's event latency)",
    ),
    Option(
        "--admin-listen",
        "EGRESS_ADMIN_LISTEN",
        None,
        "host:port of the admin listener (/metrics, /healthz, /readyz, /agents)",
    ),
    Option(
        "--on-log-failure",
        "EGRESS_ON_LOG_FAILURE",
        "deny",
        "deny: refuse new requests while decision events cannot be written (503"
        " audit_unavailable); allow: keep serving, hold events in memory, count drops",
    ),
    Option(
        "--allow-cidr",
        "EGRESS_ALLOW_CIDR",
        "",
        "comma-separated CIDRs egress may dial even if private (e.g. an internal API)",
    ),
    Option(
        "--deny-cidr", "EGRESS_DENY_CIDR", "", "comma-separated CIDRs never dialled (beats allow)"
    ),
    Option(
        "--dns-server",
        "EGRESS_DNS_SERVER",
        None,
        "resolve destinations with this DNS server (host:port) instead of the system resolver",
    ),
    Option(
        "--request-head-timeout",
        "EGRESS_REQUEST_HEAD_TIMEOUT",
        "10",
        "seconds from connecting (or from the first byte after an answer) to a complete request"
        " head; then 408 request_head_timeout (0: off)",
    ),
    Option(
        "--idle-timeout",
        "EGRESS_IDLE_TIMEOUT",
        "60",
        "seconds a keep-alive connection may wait between requests (0: off)",
    ),
    Option(
        "--tunnel-idle-timeout",
        "EGRESS_TUNNEL_IDLE_TIMEOUT",
        "300",
        "seconds a passthrough or WebSocket tunnel may be silent both ways (0: off)",
    ),
    Option(
        "--max-conns-per-agent",
        "EGRESS_MAX_CONNS_PER_AGENT",
        "256",
        "concurrent connections one agent may hold; 429 too_many_connections beyond (0: no cap)",
    ),
    Option(
        "--max-conns-unauthenticated",
        "EGRESS_MAX_CONNS_UNAUTHENTICATED",
        "512",
        "concurrent connections that have not proved an identity; when full, a new one evicts"
        " the oldest silent one (0: no cap)",
    ),
    Option(
        "--max-conns-unauthenticated-per-source",
        "EGRESS_MAX_CONNS_UNAUTHENTICATED_PER_SOURCE",
        "32",
        "concurrent unauthenticated connections from one source address (IPv6: one /64);"
        " 429 too_many_connections beyond (0: no cap)",
    ),
    Option(
        "--body-memory-limit",
        "EGRESS_BODY_MEMORY_LIMIT",
        "256m",
        "body bytes held in memory across all flows; beyond, 413 (upload) or 502 (answer)"
        " body_too_large (0: off)",
    ),
    Option(
        "--cert-cache-size",
        "EGRESS_CERT_CACHE_SIZE",
        "1000",
        "leaf certificates kept in memory, least recently used evicted beyond",
    ),
    Option(
        "--log-key-file",
        "EGRESS_LOG_KEY_FILE",
        None,
        "HMAC key of the decision log chain, generated 0600 if absent [STATE/log.key]",
    ),
    Option(
        "--log-anchor",
        "EGRESS_LOG_ANCHOR",
        None,
        "ship signed chain heads off the host: a FILE to append to, or an http(s) URL to POST",
    ),
    Option(
        "--log-anchor-interval",
        "EGRESS_LOG_ANCHOR_INTERVAL",
        "60",
        "seconds between anchors (also at start, rotation, reopen and shutdown)",
    ),
    Option(
        "--log-queue-max",
        "EGRESS_LOG_QUEUE_MAX",
        "10000",
        "decision events queued for a slow sink; beyond, the failure policy applies",
    ),
]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SERVE_OPTIONS)


@dataclass(frozen=True)
class ServeConfig:
    listen_host: str
    listen_port: int
    state_dir: Path
    policy_dir: Path
    data_file: Path | None
    identities: Path
    secrets_file: Path
    secrets_key_file: Path
    ca_dir: Path
    decision_log: Path | None
    upstream_ca: Path | None
    opa_url: str | None
    opa_timeout: float
    body_size_limit: str
    proxy_id: str | None
    workers: int = 1
    worker_index: int | None = None
    reuse_port: bool = False
    on_log_failure: str = "deny"
    max_header_bytes: int = 65536
    max_headers: int = 128
    log_fsync: str = "interval"
    log_max_bytes: int = 100 * 1024 * 1024
    log_max_age: float = 0.0
    log_compress: bool = True
    log_mask: str = "query"
    report_only: bool = False
    admin_listen: tuple[str, int] | None = None
    kill_watch: str | None = None
    allow_cidr: tuple[str, ...] = ()
    deny_cidr: tuple[str, ...] = ()
    dns_server: str | None = None
    request_head_timeout: float = 10.0
    idle_timeout: float = 60.0
    tunnel_idle_timeout: float = 300.0
    max_conns_per_agent: int = 256
    max_conns_unauthenticated: int = 512
    max_conns_unauthenticated_per_source: int = 32
    policy_workers: int = 2
    body_memory_limit: int = 256 * 1024 * 1024
    cert_cache_size: int = 1000
    log_key_file: Path | None = None
    log_anchor: str | None = None
    log_anchor_interval: float = 60.0
    log_queue_max: int = 10_000
    vault: VaultConfig | None = None  # set when --vault-addr is given

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> ServeConfig:
        """Parse and check every serve flag; a bad value is a ``ConfigError`` naming its flag."""
        return cls(
            **_network(a),
            **_files(a),
            **_decision_log(a),
            **_limits(a),
            vault=VaultConfig.from_args(a),
        )


def _files(a: argparse.Namespace) -> dict[str, Any]:
    """Paths and the policy engine's settings."""
    state = Path(a.state_dir)
    upstream_ca = Path(a.upstream_ca) if a.upstream_ca else None
    if upstream_ca is not None and not upstream_ca.is_file():
        raise ConfigError(f"--upstream-ca {upstream_ca} does not exist")
    return {
        "state_dir": state,
        "policy_dir": Path(a.policy_dir),
        "data_file": Path(a.data_file) if a.data_file else None,
        "identities": state_file(a.identities, state, IDENTITIES_FILE),
        "secrets_file": state_file(a.secrets_file, state, SECRETS_FILE),
        "secrets_key_file": state_file(a.secrets_key_file, state, SECRETS_KEY_FILE),
        "ca_dir": Path(a.ca_dir),
        "upstream_ca": upstream_ca,
        "opa_url": a.opa_url or None,
        "opa_timeout": seconds(a.opa_timeout, "--opa-timeout"),
        "report_only": flag(a.report_only, "--report-only"),
        "kill_watch": a.kill_watch or None,
    }


def _network(a: argparse.Namespace) -> dict[str, Any]:
    """Listening, workers, what may be dialled and how names resolve."""
    host, sep, port = str(a.listen).rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen must be host:port, got {a.listen!r}")
    return {
        "listen_host": host.strip("[]") or "127.0.0.1",
        "listen_port": int(port),
        "proxy_id": a.proxy_id,
        "workers": max(1, int(number(a.workers, "--workers", int))),
        "worker_index": int(a.worker_index) if a.worker_index not in (None, "") else None,
        "reuse_port": flag(a.reuse_port, "--reuse-port"),
        "admin_listen": parse_hostport(a.admin_listen) if a.admin_listen else None,
        "allow_cidr": cidrs(a.allow_cidr),
        "deny_cidr": cidrs(a.deny_cidr),
        "dns_server": a.dns_server or None,
    }


def _decision_log(a: argparse.Namespace) -> dict[str, Any]:
    """Where events go, how they are kept, chained and anchored."""
    state = Path(a.state_dir)
    log = a.decision_log or str(state / "decisions.log")
    return {
        "decision_log": None if log == "-" else Path(log),
        "on_log_failure": choice(a.on_log_failure, ("deny", "allow"), "--on-log-failure"),
        "log_fsync": choice(a.log_fsync, ("always", "interval", "never"), "--log-fsync"),
        "log_max_bytes": number(a.log_max_bytes, "--log-max-bytes", int),
        "log_max_age": number(a.log_max_age, "--log-max-age", float),
        "log_compress": flag(a.log_compress, "--log-compress"),
        "log_mask": choice(a.log_mask, ("query", "headers", "both", "none"), "--log-mask"),
        "log_key_file": Path(getattr(a, "log_key_file", None) or state / "log.key"),
        "log_anchor": getattr(a, "log_anchor", None) or None,
        "log_anchor_interval": number(
            getattr(a, "log_anchor_interval", "60"), "--log-anchor-interval", float
        ),
        "log_queue_max": number(getattr(a, "log_queue_max", "10000"), "--log-queue-max", int),
    }


def _limits(a: argparse.Namespace) -> dict[str, Any]:
    """Sizes, timeouts and connection caps."""
    per_source = "--max-conns-unauthenticated-per-source"
    return {
        "body_size_limit": a.body_size_limit,
        "max_header_bytes": number(a.max_header_bytes, "--max-header-bytes", int),
        "max_headers": number(a.max_headers, "--max-headers", int),
        "request_head_timeout": number(a.request_head_timeout, "--request-head-timeout", float),
        "idle_timeout": number(a.idle_timeout, "--idle-timeout", float),
        "tunnel_idle_timeout": number(a.tunnel_idle_timeout, "--tunnel-idle-timeout", float),
        "max_conns_per_agent": number(a.max_conns_per_agent, "--max-conns-per-agent", int),
        "max_conns_unauthenticated": number(
            a.max_conns_unauthenticated, "--max-conns-unauthenticated", int
        ),
        "max_conns_unauthenticated_per_source": number(
            a.max_conns_unauthenticated_per_source, per_source, int
        ),
        "body_memory_limit": size(a.body_memory_limit, "--body-memory-limit"),
        "cert_cache_size": max(1, int(number(a.cert_cache_size, "--cert-cache-size", int))),
        "policy_workers": number(a.policy_workers, "--policy-workers", int),
    }
