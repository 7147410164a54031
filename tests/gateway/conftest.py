"""A live gateway (subprocess) in front of a real fake-LLM upstream, with real JWT keys."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from egress.testing.world import world as new_world
from tests.support.fake_llm import FakeLLM, start_fake_llm
from tests.support.origin import free_port
from tests.support.proxy import DecisionEvents, spawn_until_ready

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_KEY = "sk-upstream-REAL-key-0123456789abcdef"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCE = "egress-gateway"
# (secret name, host binding, allow_plaintext) for alice; each has a route "bind-<name>" whose
# upstream is the fake LLM at 127.0.0.1
BINDING_KEYS = [
    ("other-host", ["api.openai.com"], True),
    ("by-name", ["localhost"], True),
    ("near-ip", ["127.0.0.10"], True),
    ("deep-glob", ["**.openai.com"], True),
    ("label-glob", ["*.example"], True),
    ("glob-ok", ["127.0.0.*"], True),
    ("cleartext", ["127.0.0.1"], False),
]


@dataclass
class Gateway(DecisionEvents):
    proc: subprocess.Popen
    url: str
    admin: str
    log_path: Path
    llm: FakeLLM
    tokens: dict[str, str]
    signing_key: rsa.RSAPrivateKey
    other_key: rsa.RSAPrivateKey
    output: list[str] = field(default_factory=list)

    def sa_token(
        self,
        namespace: str,
        name: str,
        *,
        audience: str = AUDIENCE,
        issuer: str = ISSUER,
        expires_in: int = 600,
        key=None,
        kid: str = "k1",
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "exp": now + expires_in,
        }
        return jwt.encode(claims, key or self.signing_key, algorithm="RS256", headers={"kid": kid})


def _jwks(key: rsa.RSAPrivateKey, path: Path) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    path.write_text(json.dumps({"keys": [jwk]}))


@pytest.fixture(scope="session")
def gateway(tmp_path_factory) -> Iterator[Gateway]:
    base = new_world(tmp_path_factory.mktemp("gateway"))  # identities and secrets in state/
    root, state = base.root, base.state_dir
    llm = start_fake_llm()
    tokens = {}
    for key, user, agent, ns in [
        ("alice", "alice@example.com", "triage-bot", "agents-alice"),
        ("bob", "bob@example.com", "triage-bot", "agents-bob"),
        ("carol", "carol@example.com", "busy-bot", "agents-carol"),
        ("dan", "dan@example.com", "thrifty-bot", "agents-dan"),
    ]:
        tokens[key] = base.agent(user, agent, namespace=ns)
    for user, agent in [
        ("alice@example.com", "triage-bot"),
        ("carol@example.com", "busy-bot"),
        ("dan@example.com", "thrifty-bot"),
    ]:
        # the fake LLM speaks plain http on loopback: these keys are allowed to travel so
        base.secret(user, agent, "openai", UPSTREAM_KEY, ["127.0.0.1"], allow_plaintext=True)
    # keys whose host binding does not admit their route's upstream (127.0.0.1), and one that
    # is bound right but may not travel in clear text (tests/gateway/test_binding.py)
    for name, hosts, plaintext in BINDING_KEYS:
        base.secret(
            "alice@example.com", "triage-bot", name, UPSTREAM_KEY, hosts, allow_plaintext=plaintext
        )
    llm_rule = {
        "id": "llm",
        "routes": ["openai", "down"],
        "models": ["gpt-4o-mini"],
        "secrets": ["openai"],
    }
    binding_rule = {
        "id": "binding",
        "routes": [f"bind-{name}" for name, _, _ in BINDING_KEYS],
        "secrets": [name for name, _, _ in BINDING_KEYS],
    }
    embed_rule = {"id": "embed", "routes": ["embeddings"], "secrets": ["openai"]}
    base.policy(
        {
            "alice@example.com/triage-bot": [llm_rule, embed_rule, binding_rule],
            "bob@example.com/triage-bot": [llm_rule],  # no key stored for bob
            "carol@example.com/busy-bot": [llm_rule],
            "dan@example.com/thrifty-bot": [llm_rule],
        }
    )
    config = {
        "routes": {
            "openai": {"base_url": llm.base_url, "secret": "openai"},
            "embeddings": {"base_url": llm.base_url, "secret": "openai"},
            "down": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "secret": "openai"},
            **{
                f"bind-{name}": {"base_url": llm.base_url, "secret": name}
                for name, _, _ in BINDING_KEYS
            },
        },
        "limits": {
            "default": {"requests_per_minute": 1000, "tokens_per_day": 1_000_000},
            "agents": {
                "carol@example.com/busy-bot": {"requests_per_minute": 3},
                "dan@example.com/thrifty-bot": {"tokens_per_day": 10},
            },
        },
    }
    (root / "gateway.json").write_text(json.dumps(config))
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _jwks(signing, root / "jwks.json")
    port, admin = free_port(), free_port()
    log = root / "gateway.log"
    proc, output, _ = spawn_until_ready(
        [
            sys.executable,
            "-m",
            "egress",
            "gateway",
            "--config",
            str(root / "gateway.json"),
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(state),
            "--policy-dir",
            str(REPO / "policies"),
            "--data-file",
            str(root / "data.json"),
            "--decision-log",
            str(log),
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--jwks-file",
            str(root / "jwks.json"),
            "--jwt-issuer",
            ISSUER,
        ],
        "egress-gateway",
    )
    gw = Gateway(
        proc,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{admin}",
        log,
        llm,
        tokens,
        signing,
        other,
        output,
    )
    yield gw
    proc.terminate()
    proc.wait(15)
    llm.close()
