"""Run the gateway: uvicorn serving the ASGI app, plus the admin listener, with clean shutdown."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx
import uvicorn

from egress.audit import DecisionLogWriter
from egress.audit.chain import load_key
from egress.errors import ConfigError
from egress.gateway.app import GatewayDeps, build_app
from egress.gateway.budgets import Budgets
from egress.gateway.config import GatewayConfig
from egress.gateway.identity import GatewayIdentity, JwtVerifier, TokenReviewVerifier
from egress.identity.credentials import IdentitiesFile
from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine
from egress.policy.opa import OpaEngine
from egress.proxy.config import add_options, parse_hostport
from egress.proxy.telemetry import Telemetry, admin_app, start_admin
from egress.secrets.factory import add_vault_arguments, open_store

GATEWAY_OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--config", "EGRESS_GATEWAY_CONFIG", "gateway.json", "routes and limits (JSON)"),
    ("--listen", "EGRESS_GATEWAY_LISTEN", "127.0.0.1:4000", "address:port to listen on"),
    ("--state-dir", "EGRESS_STATE_DIR", "state", "where local runtime files live by default"),
    ("--identities", "EGRESS_IDENTITIES", None, "identities file [STATE/identities.json]"),
    ("--secrets-file", "EGRESS_SECRETS_FILE", None, "encrypted secret store [STATE/secrets.enc]"),
    ("--secrets-key-file", "EGRESS_SECRETS_KEY_FILE", None, "its key [STATE/secrets.key]"),
    ("--policy-dir", "EGRESS_POLICY_DIR", "policies", "directory of .rego policy modules"),
    ("--data-file", "EGRESS_DATA_FILE", "policies/data.json", "policy data (JSON)"),
    ("--opa-url", "EGRESS_OPA_URL", None, "ask this OPA server instead of the embedded engine"),
    (
        "--decision-log",
        "EGRESS_GATEWAY_DECISION_LOG",
        None,
        "decision log file [STATE/gateway-decisions.log]",
    ),
    (
        "--log-key-file",
        "EGRESS_GATEWAY_LOG_KEY_FILE",
        None,
        "HMAC key of the gateway's decision log chain, generated 0600 if absent"
        " [STATE/gateway-log.key]",
    ),
    (
        "--admin-listen",
        "EGRESS_GATEWAY_ADMIN_LISTEN",
        None,
        "host:port for /metrics /healthz /readyz /agents",
    ),
    ("--jwks-file", "EGRESS_JWKS_FILE", None, "JWKS to verify service-account tokens"),
    ("--jwks-url", "EGRESS_JWKS_URL", None, "or fetch the JWKS from this URL"),
    ("--jwt-issuer", "EGRESS_JWT_ISSUER", None, "expected `iss` of service-account tokens"),
    ("--jwt-audience", "EGRESS_JWT_AUDIENCE", "egress-gateway", "expected `aud`"),
    (
        "--tokenreview-url",
        "EGRESS_TOKENREVIEW_URL",
        None,
        "verify service-account tokens with this Kubernetes API's TokenReview instead",
    ),
    (
        "--tokenreview-token-file",
        "EGRESS_TOKENREVIEW_TOKEN_FILE",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "the gateway's own token for it",
    ),
    (
        "--tokenreview-ca",
        "EGRESS_TOKENREVIEW_CA",
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        "CA of the Kubernetes API",
    ),
]


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GATEWAY_OPTIONS)
    add_vault_arguments(parser)


async def run_gateway(a: argparse.Namespace) -> int:
    config = GatewayConfig.load(Path(a.config))
    state = Path(a.state_dir)
    host, port = parse_hostport(a.listen)
    verifier: JwtVerifier | TokenReviewVerifier | None = None
    if a.tokenreview_url:
        ca = Path(a.tokenreview_ca) if a.tokenreview_ca else None
        verifier = TokenReviewVerifier(
            a.tokenreview_url,
            reviewer_token_file=Path(a.tokenreview_token_file),
            ca_file=ca if ca and ca.exists() else None,
            audience=a.jwt_audience,
        )
    elif a.jwks_file or a.jwks_url:
        if not a.jwt_issuer:
            raise ConfigError("--jwt-issuer is required with --jwks-file/--jwks-url")
        verifier = JwtVerifier(
            jwks_file=Path(a.jwks_file) if a.jwks_file else None,
            jwks_url=a.jwks_url,
            issuer=a.jwt_issuer,
            audience=a.jwt_audience,
        )
    identities = IdentitiesFile(Path(a.identities or state / "identities.json"))
    inner = (
        OpaEngine(a.opa_url)
        if a.opa_url
        else EmbeddedEngine(Path(a.policy_dir), Path(a.data_file) if a.data_file else None)
    )
    engine = CachedEngine(inner)
    await engine.start()
    store = open_store(a)
    key_file = Path(a.log_key_file or state / "gateway-log.key")
    try:
        key = load_key(key_file, create=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--log-key-file: {e}") from e
    # keyed like the proxy's log: without the key an edited history cannot be re-signed
    writer = DecisionLogWriter(Path(a.decision_log or state / "gateway-decisions.log"), key=key)
    await writer.start()
    telemetry = Telemetry()
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=5.0), limits=httpx.Limits(max_connections=200)
    )
    deps = GatewayDeps(
        config=config,
        identity=GatewayIdentity(identities, verifier),
        engine=engine,
        store=store,
        writer=writer,
        budgets=Budgets(),
        client=client,
        observers=[telemetry.observe],
    )
    app = build_app(deps)
    admin = None
    if a.admin_listen:

        def extra() -> dict[str, float]:
            return {
                "egress_log_queue_depth": writer.pending(),
                "egress_log_healthy": int(writer.healthy),
                "egress_log_dropped_total": writer.dropped,
            }

        admin, admin_port = await start_admin(
            admin_app(
                telemetry,
                extra=extra,
                info=lambda: {
                    "engine": engine.name,
                    "revision": engine.revision,
                    "component": "gateway",
                },
                ready=lambda: [] if writer.healthy else ["decision log not writable"],
            ),
            *parse_hostport(a.admin_listen),
        )
        print(
            f"egress-gateway: admin listening on {a.admin_listen.rsplit(':', 1)[0]}:{admin_port}",
            flush=True,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()[1]
        print(f"egress-gateway: listening on {host}:{bound}", flush=True)
        print(
            "egress-gateway: routes "
            + ", ".join(f"/{r.name}/v1 -> {r.base_url}" for r in config.routes.values()),
            flush=True,
        )
        print("egress-gateway: ready", flush=True)
    try:
        await task
    finally:
        await client.aclose()
        if admin is not None:
            await admin.cleanup()
        await writer.close()
        await engine.close()
        print(
            f"egress-gateway: stopped; {writer.written} decision events written",
            file=sys.stderr,
            flush=True,
        )
    return 0
