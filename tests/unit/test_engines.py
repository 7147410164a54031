"""make_engine: one assembly of the policy engine for the proxy, the gateway and replay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from egress.identity.model import Identity
from egress.policy import build_input
from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine
from egress.policy.engines import make_engine, offline_engine
from egress.policy.opa import OpaEngine

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


@dataclass(frozen=True)
class Settings:
    policy_dir: Path = POLICIES
    data_file: Path | None = POLICIES / "data.json"
    opa_url: str | None = None
    opa_timeout: float = 0.25
    policy_workers: int = 2


def test_embedded_engine_behind_the_cache() -> None:
    engine = make_engine(Settings())
    assert isinstance(engine, CachedEngine)
    assert isinstance(engine.engine, EmbeddedEngine)
    assert engine.engine.reload_interval == 0.25, "serving engines pick up edited policy files"
    assert engine.revision


def test_opa_engine_gets_url_and_timeout() -> None:
    engine = make_engine(Settings(opa_url="http://127.0.0.1:9", opa_timeout=0.75))
    assert isinstance(engine, CachedEngine)
    assert isinstance(engine.engine, OpaEngine)
    assert engine.engine.timeout == 0.75, "--opa-timeout reaches the OPA client"


def test_gateway_config_satisfies_the_settings(tmp_path: Path) -> None:
    import argparse

    from egress.gateway.config import GatewayServeConfig, add_gateway_arguments

    p = argparse.ArgumentParser()
    add_gateway_arguments(p)
    a = p.parse_args(["--opa-url", "http://127.0.0.1:9", "--opa-timeout", "1.5"])
    engine = make_engine(GatewayServeConfig.from_args(a))
    assert isinstance(engine.engine, OpaEngine) and engine.engine.timeout == 1.5


def test_offline_engine_never_reloads_and_decides_synchronously() -> None:
    engine = offline_engine(POLICIES, POLICIES / "data.json")
    assert isinstance(engine, EmbeddedEngine)
    assert engine.reload_interval == float("inf")
    who = Identity(user="nobody@example.com", agent="ghost", namespace="default")
    d = engine.evaluate(
        build_input(
            who,
            phase="request",
            host="example.com",
            port=443,
            scheme="https",
            method="GET",
            path="/",
        )
    )
    assert d.allow is False
    asyncio.run(engine.close())
