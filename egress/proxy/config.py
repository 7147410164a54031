"""Serve configuration: flags, their environment variables and defaults, in one table."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from egress.errors import ConfigError

# (flag, env var, default, help). Defaults keep all runtime state under --state-dir.
SERVE_OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--listen", "EGRESS_LISTEN", "127.0.0.1:8080", "address:port to listen on"),
    ("--state-dir", "EGRESS_STATE_DIR", "state", "where local runtime files live by default"),
    ("--policy-dir", "EGRESS_POLICY_DIR", "policies", "directory of .rego policy modules"),
    ("--data-file", "EGRESS_DATA_FILE", "policies/data.json", "policy data (JSON)"),
    ("--identities", "EGRESS_IDENTITIES", None, "identities file [STATE/identities.json]"),
    ("--secrets-file", "EGRESS_SECRETS_FILE", None, "encrypted secret store [STATE/secrets.enc]"),
    (
        "--secrets-key-file",
        "EGRESS_SECRETS_KEY_FILE",
        None,
        "key of the secret store [STATE/secrets.key] (or EGRESS_SECRETS_KEY)",
    ),
    ("--ca-dir", "EGRESS_CA_DIR", "certs", "directory holding the platform CA"),
    (
        "--decision-log",
        "EGRESS_DECISION_LOG",
        None,
        "decision log file, '-' for stdout [STATE/decisions.log]",
    ),
    (
        "--upstream-ca",
        "EGRESS_UPSTREAM_CA",
        None,
        "extra PEM bundle trusted for upstream TLS, on top of the system store",
    ),
    (
        "--opa-url",
        "EGRESS_OPA_URL",
        None,
        "ask this OPA server instead of the embedded engine (e.g. http://127.0.0.1:8181)",
    ),
    ("--opa-timeout", "EGRESS_OPA_TIMEOUT", "0.25", "seconds before an OPA query is a deny"),
    ("--body-size-limit", "EGRESS_BODY_SIZE_LIMIT", "64m", "largest request/response body"),
    (
        "--max-header-bytes",
        "EGRESS_MAX_HEADER_BYTES",
        "65536",
        "largest request head forwarded (431 beyond)",
    ),
    ("--max-headers", "EGRESS_MAX_HEADERS", "128", "most header fields forwarded (431 beyond)"),
    ("--proxy-id", "EGRESS_PROXY_ID", None, "label of this replica in decision events"),
    (
        "--workers",
        "EGRESS_WORKERS",
        "1",
        "proxy processes sharing the listen port (SO_REUSEPORT); one decision log each",
    ),
    ("--worker-index", "EGRESS_WORKER_INDEX", None, "set by the supervisor for each worker"),
    ("--reuse-port", "EGRESS_REUSE_PORT", "false", "bind the listen port with SO_REUSEPORT"),
    (
        "--log-fsync",
        "EGRESS_LOG_FSYNC",
        "interval",
        "always: event on disk before the answer; interval: fsync every second; never",
    ),
    ("--log-max-bytes", "EGRESS_LOG_MAX_BYTES", "104857600", "rotate the log past this size"),
    ("--log-max-age", "EGRESS_LOG_MAX_AGE", "0", "rotate the log after this many seconds (0: off)"),
    ("--log-compress", "EGRESS_LOG_COMPRESS", "true", "gzip rotated log files"),
    (
        "--log-mask",
        "EGRESS_LOG_MASK",
        "query",
        "input fields whose values are masked in events: query, headers, both or none",
    ),
    (
        "--report-only",
        "EGRESS_REPORT_ONLY",
        "false",
        "report mode for everyone: log would_deny, allow (per agent: data.egress.report_only)",
    ),
    (
        "--kill-watch",
        "EGRESS_KILL_WATCH",
        None,
        "follow Agent resources for killSwitch on the Kubernetes API: in-cluster, or"
        " https://API,TOKEN_FILE[,CA_FILE] (kills apply within the API's event latency)",
    ),
    (
        "--admin-listen",
        "EGRESS_ADMIN_LISTEN",
        None,
        "host:port of the admin listener (/metrics, /healthz, /readyz, /agents)",
    ),
    (
        "--on-log-failure",
        "EGRESS_ON_LOG_FAILURE",
        "deny",
        "deny: refuse new requests while decision events cannot be written (503"
        " audit_unavailable); allow: keep serving, hold events in memory, count drops",
    ),
    (
        "--allow-cidr",
        "EGRESS_ALLOW_CIDR",
        "",
        "comma-separated CIDRs egress may dial even if private (e.g. an internal API)",
    ),
    ("--deny-cidr", "EGRESS_DENY_CIDR", "", "comma-separated CIDRs never dialled (beats allow)"),
    (
        "--dns-server",
        "EGRESS_DNS_SERVER",
        None,
        "resolve destinations with this DNS server (host:port) instead of the system resolver",
    ),
    (
        "--request-head-timeout",
        "EGRESS_REQUEST_HEAD_TIMEOUT",
        "10",
        "seconds from connecting (or from the first byte after an answer) to a complete request"
        " head; then 408 request_head_timeout (0: off)",
    ),
    (
        "--idle-timeout",
        "EGRESS_IDLE_TIMEOUT",
        "60",
        "seconds a keep-alive connection may wait between requests (0: off)",
    ),
    (
        "--tunnel-idle-timeout",
        "EGRESS_TUNNEL_IDLE_TIMEOUT",
        "300",
        "seconds a passthrough or WebSocket tunnel may be silent both ways (0: off)",
    ),
    (
        "--max-conns-per-agent",
        "EGRESS_MAX_CONNS_PER_AGENT",
        "256",
        "concurrent connections one agent may hold; 429 too_many_connections beyond (0: no cap)",
    ),
    (
        "--max-conns-unauthenticated",
        "EGRESS_MAX_CONNS_UNAUTHENTICATED",
        "512",
        "concurrent connections that have not proved an identity; when full, a new one evicts"
        " the oldest silent one (0: no cap)",
    ),
    (
        "--max-conns-unauthenticated-per-source",
        "EGRESS_MAX_CONNS_UNAUTHENTICATED_PER_SOURCE",
        "32",
        "concurrent unauthenticated connections from one source address (IPv6: one /64);"
        " 429 too_many_connections beyond (0: no cap)",
    ),
    (
        "--body-memory-limit",
        "EGRESS_BODY_MEMORY_LIMIT",
        "256m",
        "body bytes held in memory across all flows; beyond, 413 (upload) or 502 (answer)"
        " body_too_large (0: off)",
    ),
    (
        "--log-key-file",
        "EGRESS_LOG_KEY_FILE",
        None,
        "HMAC key of the decision log chain, generated 0600 if absent [STATE/log.key]",
    ),
    (
        "--log-anchor",
        "EGRESS_LOG_ANCHOR",
        None,
        "ship signed chain heads off the host: a FILE to append to, or an http(s) URL to POST",
    ),
    (
        "--log-anchor-interval",
        "EGRESS_LOG_ANCHOR_INTERVAL",
        "60",
        "seconds between anchors (also at start, rotation, reopen and shutdown)",
    ),
    (
        "--log-queue-max",
        "EGRESS_LOG_QUEUE_MAX",
        "10000",
        "decision events queued for a slow sink; beyond, the failure policy applies",
    ),
]


Option = tuple[str, str, str | None, str]  # (flag, env var, default, help)


def add_options(parser: argparse.ArgumentParser, table: list[Option]) -> None:
    """Every flag of a table, defaulting to its environment variable, both named in --help."""
    for flag, env, default, help_text in table:
        shown = f" [env {env}" + (f", default {default}]" if default else "]")
        parser.add_argument(flag, default=os.environ.get(env, default), help=help_text + shown)


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
    body_memory_limit: int = 256 * 1024 * 1024
    log_key_file: Path | None = None
    log_anchor: str | None = None
    log_anchor_interval: float = 60.0
    log_queue_max: int = 10_000
    vault: argparse.Namespace | None = None  # Vault flags when --vault-addr is set

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> ServeConfig:
        host, sep, port = str(a.listen).rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"--listen must be host:port, got {a.listen!r}")
        state = Path(a.state_dir)
        log = a.decision_log or str(state / "decisions.log")
        upstream_ca = Path(a.upstream_ca) if a.upstream_ca else None
        if upstream_ca is not None and not upstream_ca.is_file():
            raise ConfigError(f"--upstream-ca {upstream_ca} does not exist")
        try:
            opa_timeout = float(a.opa_timeout)
        except ValueError as e:
            raise ConfigError(f"--opa-timeout must be seconds, got {a.opa_timeout!r}") from e
        return cls(
            listen_host=host.strip("[]") or "127.0.0.1",
            listen_port=int(port),
            state_dir=state,
            policy_dir=Path(a.policy_dir),
            data_file=Path(a.data_file) if a.data_file else None,
            identities=Path(a.identities or state / "identities.json"),
            secrets_file=Path(a.secrets_file or state / "secrets.enc"),
            secrets_key_file=Path(a.secrets_key_file or state / "secrets.key"),
            ca_dir=Path(a.ca_dir),
            decision_log=None if log == "-" else Path(log),
            upstream_ca=upstream_ca,
            opa_url=a.opa_url or None,
            opa_timeout=opa_timeout,
            body_size_limit=a.body_size_limit,
            proxy_id=a.proxy_id,
            workers=max(1, int(_number(a.workers, "--workers", int))),
            worker_index=int(a.worker_index) if a.worker_index not in (None, "") else None,
            reuse_port=_flag(a.reuse_port, "--reuse-port"),
            on_log_failure=_choice(a.on_log_failure, ("deny", "allow"), "--on-log-failure"),
            max_header_bytes=_number(a.max_header_bytes, "--max-header-bytes", int),
            max_headers=_number(a.max_headers, "--max-headers", int),
            log_fsync=_choice(a.log_fsync, ("always", "interval", "never"), "--log-fsync"),
            log_max_bytes=_number(a.log_max_bytes, "--log-max-bytes", int),
            log_max_age=_number(a.log_max_age, "--log-max-age", float),
            log_compress=_flag(a.log_compress, "--log-compress"),
            log_mask=_choice(a.log_mask, ("query", "headers", "both", "none"), "--log-mask"),
            report_only=_flag(a.report_only, "--report-only"),
            admin_listen=parse_hostport(a.admin_listen) if a.admin_listen else None,
            kill_watch=a.kill_watch or None,
            allow_cidr=_cidrs(a.allow_cidr),
            deny_cidr=_cidrs(a.deny_cidr),
            dns_server=a.dns_server or None,
            request_head_timeout=_number(a.request_head_timeout, "--request-head-timeout", float),
            idle_timeout=_number(a.idle_timeout, "--idle-timeout", float),
            tunnel_idle_timeout=_number(a.tunnel_idle_timeout, "--tunnel-idle-timeout", float),
            max_conns_per_agent=_number(a.max_conns_per_agent, "--max-conns-per-agent", int),
            max_conns_unauthenticated=_number(
                a.max_conns_unauthenticated, "--max-conns-unauthenticated", int
            ),
            max_conns_unauthenticated_per_source=_number(
                a.max_conns_unauthenticated_per_source,
                "--max-conns-unauthenticated-per-source",
                int,
            ),
            body_memory_limit=_size(a.body_memory_limit, "--body-memory-limit"),
            log_key_file=Path(getattr(a, "log_key_file", None) or state / "log.key"),
            log_anchor=getattr(a, "log_anchor", None) or None,
            log_anchor_interval=_number(
                getattr(a, "log_anchor_interval", "60"), "--log-anchor-interval", float
            ),
            log_queue_max=_number(getattr(a, "log_queue_max", "10000"), "--log-queue-max", int),
            vault=a if getattr(a, "vault_addr", None) else None,
        )


def _cidrs(value: str | None) -> tuple[str, ...]:
    import ipaddress

    out = tuple(c.strip() for c in (value or "").split(",") if c.strip())
    for c in out:
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError as e:
            raise ConfigError(f"not a CIDR: {c!r}", reason="cidr_invalid") from e
    return out


def _choice(value: str, options: tuple[str, ...], flag: str) -> str:
    if value not in options:
        raise ConfigError(f"{flag} must be one of {', '.join(options)}, got {value!r}")
    return value


def _number(value: str, flag: str, kind: type[int] | type[float]) -> int | float:
    try:
        n = kind(value)
    except ValueError as e:
        raise ConfigError(f"{flag} must be a number, got {value!r}") from e
    if n < 0:
        raise ConfigError(f"{flag} must not be negative")
    return n


def _size(value: str, flag: str) -> int:
    """Bytes, with an optional k/m/g suffix (as --body-size-limit takes)."""
    v = str(value).strip().lower()
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(v[-1:], 1)
    number = v[:-1] if scale != 1 else v
    if not number.isdigit():
        raise ConfigError(f"{flag} must be bytes with an optional k/m/g suffix, got {value!r}")
    return int(number) * scale


def _flag(value: str | bool, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{flag} must be true or false, got {value!r}")


def parse_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
