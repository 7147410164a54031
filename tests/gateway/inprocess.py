"""The gateway's pieces in-process, for station-by-station unit tests.

Real objects throughout: an identities file, a local secret store, the embedded policy engine
on the repository's policies, budgets, and a decision-log writer (never started: the events
are read from an observer). Only the upstream is an ``httpx.MockTransport`` the test supplies,
and requests are Starlette ``Request`` objects built from an ASGI scope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request

from egress.audit import DecisionLogWriter
from egress.gateway.budgets import Budgets
from egress.gateway.call import Call, GatewayDeps
from egress.gateway.config import GatewayConfig, Limits, Route
from egress.gateway.identity import GatewayIdentity
from egress.identity.credentials import IdentitiesFile
from egress.policy.embedded import EmbeddedEngine
from egress.secrets.local import LocalSecretStore

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-upstream-REAL-key-0123456789abcdef"
UPSTREAM = "http://127.0.0.1:9/v1"  # never dialled: the mock transport answers
ROUTES = {
    "openai": Route("openai", UPSTREAM, "openai"),
    "unlisted": Route("unlisted", UPSTREAM, "other"),  # the policy lists no secret "other"
    "elsewhere": Route("elsewhere", UPSTREAM, "far"),  # "far" is bound to another host
    "cleartext": Route("cleartext", UPSTREAM, "tls-only"),  # may not travel over http
    "custom": Route("custom", UPSTREAM, "openai", "x-api-key", "{value}"),
}
RULES = [
    {
        "id": "llm",
        "routes": ["openai", "unlisted", "elsewhere", "cleartext", "custom"],
        "models": ["gpt-4o-mini"],
        "secrets": ["openai", "far", "tls-only"],
    }
]


@dataclass
class Rig:
    deps: GatewayDeps
    tokens: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)


def build_rig(
    root: Path,
    upstream: Callable[[httpx.Request], httpx.Response] | None = None,
    *,
    requests_per_minute: int = 1000,
) -> Rig:
    """A gateway's dependencies under ``root``: alice has keys, bob has a rule but no key."""
    ids = IdentitiesFile(root / "identities.json")
    tokens = {
        "alice": ids.add("alice@example.com", "triage-bot")[1],
        "bob": ids.add("bob@example.com", "triage-bot")[1],
    }
    store = LocalSecretStore.open(root / "secrets.enc", root / "secrets.key", create=True)
    alice = ("alice@example.com", "triage-bot")
    store.put(*alice, "openai", KEY, ["127.0.0.1"], allow_plaintext=True)
    store.put(*alice, "far", KEY, ["api.openai.com"], allow_plaintext=True)
    store.put(*alice, "tls-only", KEY, ["127.0.0.1"], allow_plaintext=False)
    agents = {
        "alice@example.com": {"triage-bot": {"rules": RULES}},
        "bob@example.com": {"triage-bot": {"rules": RULES}},
    }
    data = root / "data.json"
    data.write_text(json.dumps({"egress": {"agents": agents, "killed": {}}}))
    events: list[dict[str, Any]] = []
    deps = GatewayDeps(
        config=GatewayConfig(dict(ROUTES), Limits(requests_per_minute=requests_per_minute)),
        identity=GatewayIdentity(ids, None),
        engine=EmbeddedEngine(REPO / "policies", data),
        store=store,
        writer=DecisionLogWriter(root / "decisions.log"),
        budgets=Budgets(),
        client=httpx.AsyncClient(transport=httpx.MockTransport(upstream or _unreachable)),
        observers=[events.append],
        instance="unit",
    )
    return Rig(deps, tokens, events)


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def make_request(
    method: str,
    route: str,
    path: str = "chat/completions",
    *,
    token: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    query: str = "",
) -> Request:
    """A Starlette request as the router hands it to the endpoint (path params filled in)."""
    raw = dict(headers or {})
    if token is not None:
        raw["authorization"] = f"Bearer {token}"
    if body:
        raw.setdefault("content-length", str(len(body)))
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": f"/{route}/v1/{path}",
        "raw_path": f"/{route}/v1/{path}".encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in raw.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8443),
        "path_params": {"route": route, "path": path},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def chat(model: str = "gpt-4o-mini", **extra: Any) -> bytes:
    return json.dumps({"model": model, "messages": [], **extra}).encode()


def new_call(method: str, route: str, **kw: Any) -> Call:
    return Call(make_request(method, route, **kw))
