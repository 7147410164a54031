"""Run the gateway: uvicorn serving the ASGI app, plus the admin listener, with clean shutdown."""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx
import uvicorn
from aiohttp import web
from starlette.applications import Starlette

from egress.audit import DecisionLogWriter
from egress.audit.chain import load_key
from egress.errors import ConfigError
from egress.gateway.app import GatewayDeps, build_app
from egress.gateway.budgets import Budgets
from egress.gateway.config import (
    GATEWAY_OPTIONS,
    GatewayConfig,
    GatewayServeConfig,
    add_gateway_arguments,
)
from egress.gateway.identity import GatewayIdentity, JwtVerifier, TokenReviewVerifier
from egress.identity.credentials import IdentitiesFile
from egress.policy.cache import CachedEngine
from egress.policy.engines import make_engine
from egress.proxy.telemetry import Telemetry, admin_app, start_admin
from egress.secrets.factory import make_store

# the flags live with the typed config (gateway/config.py); named here for existing callers
__all__ = ["GATEWAY_OPTIONS", "add_gateway_arguments", "run", "run_gateway"]


def make_verifier(cfg: GatewayServeConfig) -> JwtVerifier | TokenReviewVerifier | None:
    """TokenReview if its URL is set, else JWT against a JWKS, else none (platform tokens)."""
    if cfg.tokenreview_url:
        ca = cfg.tokenreview_ca
        return TokenReviewVerifier(
            cfg.tokenreview_url,
            reviewer_token_file=cfg.tokenreview_token_file,
            ca_file=ca if ca and ca.exists() else None,
            audience=cfg.jwt_audience,
        )
    if cfg.jwks_file or cfg.jwks_url:
        if not cfg.jwt_issuer:
            raise ConfigError("--jwt-issuer is required with --jwks-file/--jwks-url")
        return JwtVerifier(
            jwks_file=cfg.jwks_file,
            jwks_url=cfg.jwks_url,
            issuer=cfg.jwt_issuer,
            audience=cfg.jwt_audience,
        )
    return None


async def open_writer(cfg: GatewayServeConfig) -> DecisionLogWriter:
    try:
        key = load_key(cfg.log_key_file, create=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"--log-key-file: {e}") from e
    # keyed like the proxy's log: without the key an edited history cannot be re-signed
    writer = DecisionLogWriter(cfg.decision_log, key=key)
    await writer.start()
    return writer


async def _start_admin(
    addr: tuple[str, int], telemetry: Telemetry, writer: DecisionLogWriter, engine: CachedEngine
) -> web.AppRunner:
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
        *addr,
    )
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    print(f"egress-gateway: admin listening on {host}:{admin_port}", flush=True)
    return admin


async def _serve(app: Starlette, cfg: GatewayServeConfig, routes: GatewayConfig) -> None:
    """uvicorn until it stops; the ready lines once it has bound its socket."""
    host = cfg.listen_host
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=cfg.listen_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
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
            + ", ".join(f"/{r.name}/v1 -> {r.base_url}" for r in routes.routes.values()),
            flush=True,
        )
        print("egress-gateway: ready", flush=True)
    await task


async def run_gateway(a: argparse.Namespace) -> int:
    """``egress gateway``: parse the flags, then run."""
    cfg = GatewayServeConfig.from_args(a)
    return await run(cfg, GatewayConfig.load(cfg.routes_file))


async def run(cfg: GatewayServeConfig, routes: GatewayConfig) -> int:
    verifier = make_verifier(cfg)
    identities = IdentitiesFile(cfg.identities)
    engine = make_engine(cfg)
    await engine.start()
    store = make_store(cfg.vault, cfg.secrets_file, cfg.secrets_key_file)
    writer = await open_writer(cfg)
    telemetry = Telemetry()
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=5.0), limits=httpx.Limits(max_connections=200)
    )
    deps = GatewayDeps(
        config=routes,
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
    if cfg.admin_listen:
        admin = await _start_admin(cfg.admin_listen, telemetry, writer, engine)
    try:
        await _serve(app, cfg, routes)
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
