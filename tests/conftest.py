"""Shared fixtures: real TLS origins, a platform CA, registered agents, secrets, a live proxy."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from egress.testing.world import world as new_world
from tests.support.log_leaks import leaks
from tests.support.opa import start_opa
from tests.support.origin import Origin, start_origin
from tests.support.pki import TestCA
from tests.support.policy import policy_doc
from tests.support.proxy import ProxyProcess, start_proxy

GITHUB_VALUE = "ghs_REALVALUEnever2leave0the1proxy9XyZ"
OPENAI_VALUE = "sk-real-openai-value-000111222333444"
BOB_VALUE = "bob-real-secret-value-5551234"


@dataclass
class Agent:
    user: str
    name: str
    token: str


@dataclass
class World:
    root: Path
    ca_dir: Path
    test_ca: TestCA
    origin: Origin  # TLS origin trusted via --upstream-ca
    plain: Origin  # plain HTTP origin
    untrusted: Origin  # TLS origin whose CA the proxy does not trust
    forbidden: Origin  # TLS origin no policy rule admits
    data_file: Path
    state_dir: Path
    alice: Agent
    bob: Agent
    carol: Agent  # killed
    dave: Agent  # revoked
    erin: Agent  # registered, but the policy data has no rules for her
    placeholders: dict[str, str]


def policy_data(w_origin: int, plain: int, untrusted: int) -> dict:
    origin_rules = [
        {
            "id": "origin-api",
            "hosts": ["localhost"],
            "ports": [w_origin],
            "methods": ["GET", "POST"],
            "paths": ["/api/", "/echo", "/sse", "/ws", "/redirect", "/forge"],
            "secrets": ["github"],
        },
        {
            "id": "origin-by-ip",
            "hosts": ["127.0.0.1"],
            "ports": [w_origin],
            "methods": ["GET"],
            "paths": ["/api/"],
            "secrets": ["github"],
        },
        {
            "id": "plain-http",
            "hosts": ["localhost"],
            "ports": [plain],
            "schemes": ["http"],
            "methods": ["GET", "POST"],
            "paths": ["/api/"],
            "secrets": ["github"],
        },
        {"id": "untrusted", "hosts": ["localhost"], "ports": [untrusted], "methods": ["GET"]},
    ]
    bob_rule = {
        "id": "bob-origin",
        "hosts": ["localhost"],
        "ports": [w_origin],
        "methods": ["GET"],
        "secrets": ["bobsecret"],
    }
    return policy_doc(
        {
            "alice@example.com/triage-bot": origin_rules,
            "bob@example.com/triage-bot": [bob_rule],
            "carol@example.com/killed-bot": origin_rules,
        },
        killed=["carol@example.com/killed-bot"],
    )


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After every suite ran (proxies and gateways stopped, logs flushed): no log file any test
    wrote holds a real secret value, in any form a reader could decode (item 16 of SECURITY.md)."""
    yield
    from tests.gateway.conftest import UPSTREAM_KEY

    found = leaks(
        tmp_path_factory.getbasetemp(), [GITHUB_VALUE, OPENAI_VALUE, BOB_VALUE, UPSTREAM_KEY]
    )
    assert not found, f"real secret values in logs: {found}"


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = new_world(tmp_path_factory.mktemp("world"))
    root, test_ca, leaf = base.root, base.test_ca, base.leaf
    rogue = TestCA.create(root / "rogue-ca", "rogue-ca")
    rogue_leaf = rogue.issue("rogue", ["localhost"], ["127.0.0.1"])
    origin = start_origin(leaf.cert_path, leaf.key_path)
    plain = start_origin()
    untrusted = start_origin(rogue_leaf.cert_path, rogue_leaf.key_path)
    forbidden = start_origin(leaf.cert_path, leaf.key_path)

    agents = {}
    for key, user, name in [
        ("alice", "alice@example.com", "triage-bot"),
        ("bob", "bob@example.com", "triage-bot"),
        ("carol", "carol@example.com", "killed-bot"),
        ("dave", "dave@example.com", "old-bot"),
        ("erin", "erin@example.com", "no-rules-bot"),
    ]:
        agents[key] = Agent(user, name, base.agent(user, name))
    base.identities.revoke("dave@example.com", "old-bot")

    alice = ("alice@example.com", "triage-bot")
    placeholders = {
        "github": base.secret(*alice, "github", GITHUB_VALUE, ["localhost"], prefix="ghp_"),
        "openai": base.secret(*alice, "openai", OPENAI_VALUE, ["api.openai.com"], prefix="sk-"),
        "bobsecret": base.secret(
            "bob@example.com", "triage-bot", "bobsecret", BOB_VALUE, ["localhost"]
        ),
    }
    data_file = root / "data.json"
    data_file.write_text(json.dumps(policy_data(origin.port, plain.port, untrusted.port)))
    ca_dir, state = base.ca_dir, base.state_dir
    yield World(
        root,
        ca_dir,
        test_ca,
        origin,
        plain,
        untrusted,
        forbidden,
        data_file,
        state,
        agents["alice"],
        agents["bob"],
        agents["carol"],
        agents["dave"],
        agents["erin"],
        placeholders,
    )
    for o in (origin, plain, untrusted, forbidden):
        o.close()


@pytest.fixture(scope="session", params=["embedded", "opa"])
def proxy(request: pytest.FixtureRequest, world: World) -> Iterator[ProxyProcess]:
    """The proxy under test, once per policy engine: every e2e case runs against both the
    embedded Rego engine and the real OPA server (bin/opa)."""
    opa = None
    extra: list[str] = []
    if request.param == "opa":
        opa = start_opa(world.data_file)
        extra = ["--opa-url", opa.url]
    p = start_proxy(
        state_dir=world.state_dir,
        ca_dir=world.ca_dir,
        data_file=world.data_file,
        upstream_ca=world.test_ca.cert_path,
        extra_args=extra,
    )
    yield p
    p.stop()
    if opa is not None:
        opa.stop()


@pytest.fixture
def client_ssl(proxy: ProxyProcess) -> ssl.SSLContext:
    return proxy.client_context()


# Hypothesis profiles: the fast one runs in `make test`, the deep one in `make fuzz`.
settings.register_profile("fast", max_examples=40, deadline=None)
settings.register_profile("deep", max_examples=1500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
