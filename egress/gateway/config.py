"""Gateway configuration: the process's flags (``GatewayServeConfig``) and the routes file
(``GatewayConfig``: routes to OpenAI-compatible upstreams, and per-agent limits).

The routes file (``--config``):

```json
{
  "routes": {
    "openai": {"base_url": "https://api.openai.com/v1", "secret": "openai",
               "auth_header": "Authorization", "auth_format": "Bearer {value}"}
  },
  "limits": {
    "default": {"requests_per_minute": 60, "tokens_per_day": 1000000},
    "agents": {"alice@example.com/triage-bot": {"tokens_per_day": 200000}}
  }
}
```
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

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
    number,
    parse_hostport,
    seconds,
    state_file,
)
from egress.secrets.factory import VaultConfig, add_vault_arguments

# The rows shared with ``egress serve`` come from egress.options; the rest are the gateway's own
# (its listen address, log and admin port have their own env vars so both can run side by side).
GATEWAY_OPTIONS: list[Option] = [
    Option("--config", "EGRESS_GATEWAY_CONFIG", "gateway.json", "routes and limits (JSON)"),
    Option("--listen", "EGRESS_GATEWAY_LISTEN", "127.0.0.1:4000", "address:port to listen on"),
    STATE_DIR,
    IDENTITIES,
    SECRETS,
    SECRETS_KEY,
    POLICY_DIR,
    DATA_FILE,
    OPA_URL,
    OPA_TIMEOUT,
    POLICY_WORKERS,
    Option(
        "--decision-log",
        "EGRESS_GATEWAY_DECISION_LOG",
        None,
        "decision log file [STATE/gateway-decisions.log]",
    ),
    Option(
        "--log-key-file",
        "EGRESS_GATEWAY_LOG_KEY_FILE",
        None,
        "HMAC key of the gateway's decision log chain, generated 0600 if absent"
        " [STATE/gateway-log.key]",
    ),
    Option(
        "--admin-listen",
        "EGRESS_GATEWAY_ADMIN_LISTEN",
        None,
        "host:port for /metrics /healthz /readyz /agents",
    ),
    Option("--jwks-file", "EGRESS_JWKS_FILE", None, "JWKS to verify service-account tokens"),
    Option("--jwks-url", "EGRESS_JWKS_URL", None, "or fetch the JWKS from this URL"),
    Option("--jwt-issuer", "EGRESS_JWT_ISSUER", None, "expected `iss` of service-account tokens"),
    Option("--jwt-audience", "EGRESS_JWT_AUDIENCE", "egress-gateway", "expected `aud`"),
    Option(
        "--tokenreview-url",
        "EGRESS_TOKENREVIEW_URL",
        None,
        "verify service-account tokens with this Kubernetes API's TokenReview instead",
    ),
    Option(
        "--tokenreview-token-file",
        "EGRESS_TOKENREVIEW_TOKEN_FILE",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "the gateway's own token for it",
    ),
    Option(
        "--tokenreview-ca",
        "EGRESS_TOKENREVIEW_CA",
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        "CA of the Kubernetes API",
    ),
]


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GATEWAY_OPTIONS)
    add_vault_arguments(parser)


@dataclass(frozen=True)
class GatewayServeConfig:
    """The gateway process's settings, parsed from its flags (the routes file is loaded later)."""

    routes_file: Path
    listen_host: str
    listen_port: int
    state_dir: Path
    identities: Path
    secrets_file: Path
    secrets_key_file: Path
    policy_dir: Path
    data_file: Path | None
    opa_url: str | None
    opa_timeout: float
    decision_log: Path
    log_key_file: Path
    admin_listen: tuple[str, int] | None
    jwks_file: Path | None
    jwks_url: str | None
    jwt_issuer: str | None
    jwt_audience: str
    tokenreview_url: str | None
    tokenreview_token_file: Path
    tokenreview_ca: Path | None
    vault: VaultConfig | None = None
    policy_workers: int = 2

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> GatewayServeConfig:
        state = Path(a.state_dir)
        host, port = parse_hostport(a.listen)
        return cls(
            routes_file=Path(a.config),
            listen_host=host,
            listen_port=port,
            state_dir=state,
            identities=state_file(a.identities, state, IDENTITIES_FILE),
            secrets_file=state_file(a.secrets_file, state, SECRETS_FILE),
            secrets_key_file=state_file(a.secrets_key_file, state, SECRETS_KEY_FILE),
            policy_dir=Path(a.policy_dir),
            data_file=Path(a.data_file) if a.data_file else None,
            opa_url=a.opa_url or None,
            opa_timeout=seconds(a.opa_timeout, "--opa-timeout"),
            policy_workers=int(number(a.policy_workers, "--policy-workers", int)),
            decision_log=state_file(a.decision_log, state, "gateway-decisions.log"),
            log_key_file=state_file(a.log_key_file, state, "gateway-log.key"),
            admin_listen=parse_hostport(a.admin_listen) if a.admin_listen else None,
            jwks_file=Path(a.jwks_file) if a.jwks_file else None,
            jwks_url=a.jwks_url or None,
            jwt_issuer=a.jwt_issuer or None,
            jwt_audience=a.jwt_audience,
            tokenreview_url=a.tokenreview_url or None,
            tokenreview_token_file=Path(a.tokenreview_token_file),
            tokenreview_ca=Path(a.tokenreview_ca) if a.tokenreview_ca else None,
            vault=VaultConfig.from_args(a),
        )


@dataclass(frozen=True)
class Route:
    name: str
    base_url: str
    secret: str
    auth_header: str = "Authorization"
    auth_format: str = "Bearer {value}"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int = 60
    tokens_per_day: int = 1_000_000


@dataclass
class GatewayConfig:
    routes: dict[str, Route]
    default_limits: Limits = field(default_factory=Limits)
    agent_limits: dict[str, Limits] = field(default_factory=dict)

    def limits_for(self, agent_key: str) -> Limits:
        return self.agent_limits.get(agent_key, self.default_limits)

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise ConfigError(f"gateway config {path}: {e}", "gateway_config_invalid") from e
        routes: dict[str, Route] = {}
        for name, r in (doc.get("routes") or {}).items():
            try:
                route = Route(name=name, **r)
            except TypeError as e:
                raise ConfigError(f"route {name!r}: {e}", "gateway_config_invalid") from e
            if urlsplit(route.base_url).scheme not in ("http", "https"):
                raise ConfigError(
                    f"route {name!r}: base_url must be http(s)", "gateway_config_invalid"
                )
            routes[name] = route
        if not routes:
            raise ConfigError(f"gateway config {path}: no routes", "gateway_config_invalid")
        limits = doc.get("limits") or {}
        default = Limits(**(limits.get("default") or {}))
        agents = {
            k: Limits(**{**default.__dict__, **v}) for k, v in (limits.get("agents") or {}).items()
        }
        return cls(routes, default, agents)
