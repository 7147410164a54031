"""One gateway request as it moves through the stations, and what it leaves behind.

``Call`` carries everything learnt about a request (who, which route and model, the policy's
decision, the key) so each station reads what earlier ones found and the decision event can be
written from it at the end. ``Refused`` is how a station stops the request; ``refusal`` turns
it into the answer (the shared shape from :mod:`egress.replies`) and ``account`` charges the
agent's token budget and writes the decision event, once per request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from egress import __version__
from egress.audit import DecisionLogWriter, new_decision_id
from egress.audit.events import event_result, make_event, utc_timestamp
from egress.gateway.budgets import Budgets
from egress.gateway.config import GatewayConfig, Route
from egress.gateway.identity import GatewayIdentity
from egress.gateway.usage import Usage
from egress.identity.model import Identity
from egress.policy import Decision, PolicyEngine
from egress.replies import gateway_body, refusal_headers
from egress.secrets import SecretStore


@dataclass
class GatewayDeps:
    """What the stations work with; built once per process by ``gateway/server.py``."""

    config: GatewayConfig
    identity: GatewayIdentity
    engine: PolicyEngine
    store: SecretStore
    writer: DecisionLogWriter
    budgets: Budgets
    client: httpx.AsyncClient
    observers: list[Callable[[dict[str, Any]], None]]
    instance: str = socket.gethostname()


class Refused(Exception):
    """A station's ``no``: the status, reason code and message the agent gets back."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}


class Call:
    """Everything known about one gateway request, for its answer and its decision event."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.decision_id = new_decision_id()
        self.started = time.time()
        self.identity: Identity | None = None
        self.route: Route | None = None
        self.model: str | None = None
        self.body = b""
        self.payload: dict[str, Any] | None = None
        self.policy_input: dict[str, Any] | None = None
        self.decision: Decision | None = None
        self.decision_ms: float | None = None
        self.secrets: list[str] = []
        self.key = ""  # the upstream key's value, set by the credential station
        self.body_len = 0

    @property
    def agent(self) -> Identity:
        """The identified agent; only stations after ``identify`` ask."""
        if self.identity is None:
            raise RuntimeError("station ran before identify")
        return self.identity

    @property
    def target(self) -> Route:
        """The route asked for; only stations after ``route`` ask."""
        if self.route is None:
            raise RuntimeError("station ran before route")
        return self.route

    @property
    def agent_key(self) -> str:
        """The ``user/agent`` key budgets and limits are kept under."""
        return str(self.agent)


def refusal(
    call: Call,
    status: int,
    reason: str,
    message: str = "",
    extra: dict[str, str] | None = None,
) -> Response:
    """The answer for a refused call; ``extra`` headers ride along (Retry-After, ...)."""
    return Response(
        orjson.dumps(gateway_body(reason, call.decision_id, message)),
        status_code=status,
        media_type="application/json",
        headers={**refusal_headers(call.decision_id, reason), **(extra or {})},
    )


def _request_fields(call: Call) -> dict[str, Any]:
    req, route = call.request, call.route
    return {
        "method": req.method,
        "scheme": "https" if route and route.base_url.startswith("https") else "http",
        "host": route.host if route else "",
        "port": route.port if route else 0,
        "path": req.url.path,
        "http_version": f"HTTP/{req.scope.get('http_version')}",
        "client": f"{req.client.host}:{req.client.port}" if req.client else "",
    }


def _usage_fields(call: Call, usage: Usage | None) -> dict[str, Any] | None:
    if call.route is None:
        return None
    return {
        "route": call.route.name,
        "model": (usage.model if usage else None) or call.model,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
    }


def decision_event(
    call: Call,
    instance: str,
    *,
    allow: bool,
    reason: str,
    status: int | None,
    bytes_out: int = 0,
    usage: Usage | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The call's decision event, in the same schema as the proxy's."""
    return make_event(
        decision_id=call.decision_id,
        timestamp=utc_timestamp(call.started),
        kind="request",
        agent=call.identity.as_policy_input() if call.identity else None,
        policy_input=call.policy_input,
        request=_request_fields(call),
        result=event_result(call.decision, allow=allow, reason=reason),
        secrets=call.secrets,
        status=status,
        bytes_in=call.body_len,
        bytes_out=bytes_out,
        decision_ms=call.decision_ms,
        total_ms=round((time.time() - call.started) * 1000, 3),
        error=error,
        labels={"proxy_id": instance, "version": __version__, "component": "gateway"},
        usage=_usage_fields(call, usage),
    )


def account(
    deps: GatewayDeps,
    call: Call,
    *,
    allow: bool,
    reason: str,
    status: int | None,
    bytes_out: int = 0,
    usage: Usage | None = None,
    error: str | None = None,
) -> None:
    """The last station: charge the tokens the upstream reported, then log the decision.

    Every call ends here exactly once, refused or answered, so the log has one event per
    request; tokens are charged only when an upstream answer reported usage.
    """
    if usage is not None:
        deps.budgets.charge(call.agent_key, usage.prompt_tokens, usage.completion_tokens)
    event = decision_event(
        call,
        deps.instance,
        allow=allow,
        reason=reason,
        status=status,
        bytes_out=bytes_out,
        usage=usage,
        error=error,
    )
    for observe in deps.observers:
        observe(event)
    deps.writer.submit(event)
