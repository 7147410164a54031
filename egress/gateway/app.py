"""The gateway's ASGI app: ``/{route}/v1/{path}`` → identify → decide → budget → key → forward.

Order of checks (first failure answers, each with a reason code and a decision event):
  1. credential in ``Authorization`` (service-account JWT or egress token)   -> 401
  2. the route exists                                                        -> 404 route_unknown
  3. body is JSON within the size limit (POST)                               -> 400/413
  4. policy ``phase: "gateway"`` admits agent, route, model                  -> 403
  5. requests/min and tokens/day budgets                                     -> 429 + Retry-After
  6. the agent's upstream key for the route exists and the policy lists it   -> 403
     secret_unavailable / secret_not_allowed (fail closed)
  7. the key's own host binding admits the route's upstream host, and the     -> 403
     upstream is https unless the key allows plain http    secret_host_not_bound /
                                                           secret_plaintext_refused
  8. forward; upstream errors pass through with their status, connection failures are 502.
The agent's own Authorization never reaches the upstream; echoed keys are scrubbed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from egress import __version__, reasons
from egress.audit import DecisionLogWriter, new_decision_id
from egress.audit.events import event_result, make_event, utc_timestamp
from egress.errors import IdentityError, SecretStoreError
from egress.gateway.budgets import Budgets
from egress.gateway.config import GatewayConfig, Route
from egress.gateway.identity import GatewayIdentity
from egress.gateway.usage import StreamUsage, Usage, from_body
from egress.identity.model import Identity
from egress.policy import Decision, PolicyEngine, build_input
from egress.secrets import SecretStore
from egress.secrets.scrub import scrub, scrub_pairs
from egress.secrets.stream import StreamScrubber

MAX_BODY = 16 * 1024 * 1024
REDACTED = "[redacted-by-egress]"
FORWARD_REQUEST_HEADERS = frozenset(
    {"content-type", "accept", "openai-beta", "user-agent", "accept-encoding"}
)
FORWARD_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "cache-control",
        "retry-after",
        "x-request-id",
        "openai-model",
        "openai-processing-ms",
    }
)


@dataclass
class GatewayDeps:
    config: GatewayConfig
    identity: GatewayIdentity
    engine: PolicyEngine
    store: SecretStore
    writer: DecisionLogWriter
    budgets: Budgets
    client: httpx.AsyncClient
    observers: list[Callable[[dict[str, Any]], None]]
    instance: str = socket.gethostname()


class _Call:
    """Everything known about one gateway request, for its answer and its decision event."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.decision_id = new_decision_id()
        self.started = time.time()
        self.identity: Identity | None = None
        self.route: Route | None = None
        self.model: str | None = None
        self.policy_input: dict[str, Any] | None = None
        self.decision: Decision | None = None
        self.decision_ms: float | None = None
        self.secrets: list[str] = []
        self.body_len = 0


def build_app(deps: GatewayDeps) -> Starlette:
    labels = {"proxy_id": deps.instance, "version": __version__, "component": "gateway"}

    def log(
        call: _Call,
        *,
        allow: bool,
        reason: str,
        status: int | None,
        bytes_out: int = 0,
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        d = call.decision
        req = call.request
        event = make_event(
            decision_id=call.decision_id,
            timestamp=utc_timestamp(call.started),
            kind="request",
            agent=call.identity.as_policy_input() if call.identity else None,
            policy_input=call.policy_input,
            request={
                "method": req.method,
                "scheme": "https"
                if call.route and call.route.base_url.startswith("https")
                else "http",
                "host": call.route.host if call.route else "",
                "port": call.route.port if call.route else 0,
                "path": req.url.path,
                "http_version": f"HTTP/{req.scope.get('http_version')}",
                "client": f"{req.client.host}:{req.client.port}" if req.client else "",
            },
            result=event_result(d, allow=allow, reason=reason),
            secrets=call.secrets,
            status=status,
            bytes_in=call.body_len,
            bytes_out=bytes_out,
            decision_ms=call.decision_ms,
            total_ms=round((time.time() - call.started) * 1000, 3),
            error=error,
            labels=labels,
            usage=None
            if call.route is None
            else {
                "route": call.route.name,
                "model": (usage.model if usage else None) or call.model,
                "prompt_tokens": usage.prompt_tokens if usage else 0,
                "completion_tokens": usage.completion_tokens if usage else 0,
            },
        )
        for observe in deps.observers:
            observe(event)
        deps.writer.submit(event)

    def refuse(
        call: _Call,
        status: int,
        reason: str,
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> Response:
        log(call, allow=False, reason=reason, status=status)
        body = {
            "error": {
                "message": message or reasons.DESCRIPTIONS.get(reason, reason),
                "type": "egress_gateway",
                "code": reason,
            },
            "reason": reason,
            "decision_id": call.decision_id,
        }
        return Response(
            orjson.dumps(body),
            status_code=status,
            media_type="application/json",
            headers={
                "X-Egress-Decision-Id": call.decision_id,
                "X-Egress-Reason": reason,
                **(headers or {}),
            },
        )

    async def handle(request: Request) -> Response:
        call = _Call(request)
        try:
            call.identity = deps.identity.identify(request.headers.get("authorization"))
        except IdentityError as e:
            return refuse(
                call,
                401,
                e.reason,
                e.message,
                {"WWW-Authenticate": 'Bearer realm="egress-gateway"'},
            )
        call.route = deps.config.routes.get(request.path_params["route"])
        if call.route is None:
            return refuse(call, 404, reasons.ROUTE_UNKNOWN)
        body = b""
        payload: dict[str, Any] | None = None
        if request.method == "POST":
            if int(request.headers.get("content-length") or 0) > MAX_BODY:
                return refuse(call, 413, reasons.HTTP_MALFORMED, "request body too large")
            body = await request.body()
            call.body_len = len(body)
            try:
                doc = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                return refuse(call, 400, reasons.HTTP_MALFORMED, "body is not JSON")
            if not isinstance(doc, dict):
                return refuse(call, 400, reasons.HTTP_MALFORMED, "body is not a JSON object")
            payload = doc
            call.model = str(doc["model"]) if isinstance(doc.get("model"), str) else None
        path = "/v1/" + request.path_params["path"]
        call.policy_input = build_input(
            call.identity,
            phase="gateway",
            scheme="https",
            host=call.route.host,
            port=call.route.port,
            method=request.method,
            path=path,
        )
        call.policy_input["gateway"] = {"route": call.route.name, "model": call.model or ""}
        t = time.perf_counter()
        call.decision = await deps.engine.decide(call.policy_input)
        call.decision_ms = round((time.perf_counter() - t) * 1000, 3)
        if not call.decision.allow:
            return refuse(call, 403, call.decision.reason, call.decision.detail)
        agent_key = str(call.identity)
        refusal = deps.budgets.admit(agent_key, deps.config.limits_for(agent_key))
        if refusal is not None:
            return refuse(
                call, 429, refusal.reason, headers={"Retry-After": str(refusal.retry_after)}
            )
        if call.route.secret not in call.decision.secrets:
            return refuse(
                call,
                403,
                reasons.SECRET_NOT_ALLOWED,
                f"policy does not list secret {call.route.secret!r} for this route",
            )
        try:
            found = await deps.store.by_name(call.identity, call.route.secret)
        except SecretStoreError as e:
            return refuse(call, 403, reasons.SECRET_UNAVAILABLE, e.message)
        if found is None:
            return refuse(
                call,
                403,
                reasons.SECRET_UNAVAILABLE,
                f"no upstream credential {call.route.secret!r} for this agent",
            )
        ref = found[0]
        if not ref.admits_host(call.route.host):
            # the same rule as the proxy's swap: a key goes only where its binding says
            return refuse(
                call,
                403,
                reasons.SECRET_HOST_NOT_BOUND,
                f"secret {ref.name!r} is not bound to the route's host {call.route.host!r}",
            )
        if call.route.scheme != "https" and not ref.allow_plaintext:
            return refuse(
                call,
                403,
                reasons.SECRET_PLAINTEXT_REFUSED,
                f"secret {ref.name!r} may not travel over plain {call.route.scheme}",
            )
        key = found[1].reveal()
        call.secrets = [call.route.secret]
        streaming = bool(payload and payload.get("stream"))
        if streaming and payload is not None:
            # ask for the usage chunk so tokens can be attributed; the agent still gets it
            opts = payload.get("stream_options")
            payload["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
            body = orjson.dumps(payload)
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST_HEADERS}
        headers[call.route.auth_header] = call.route.auth_format.replace("{value}", key)
        url = call.route.base_url.rstrip("/") + "/" + request.path_params["path"]
        if request.url.query:
            url += "?" + request.url.query
        pairs = scrub_pairs([(key, REDACTED)])
        try:
            upstream = await deps.client.send(
                deps.client.build_request(request.method, url, headers=headers, content=body),
                stream=True,
            )
        except httpx.HTTPError as e:
            log(
                call,
                allow=True,
                reason=reasons.UPSTREAM_CONNECT_FAILED,
                status=502,
                error=f"{type(e).__name__}",
            )
            body_out = {
                "error": {
                    "message": "upstream unreachable",
                    "type": "egress_gateway",
                    "code": reasons.UPSTREAM_CONNECT_FAILED,
                },
                "reason": reasons.UPSTREAM_CONNECT_FAILED,
                "decision_id": call.decision_id,
            }
            return Response(
                orjson.dumps(body_out),
                status_code=502,
                media_type="application/json",
                headers={
                    "X-Egress-Decision-Id": call.decision_id,
                    "X-Egress-Reason": reasons.UPSTREAM_CONNECT_FAILED,
                },
            )
        out_headers = {
            k: v for k, v in upstream.headers.items() if k.lower() in FORWARD_RESPONSE_HEADERS
        }
        out_headers["X-Egress-Decision-Id"] = call.decision_id
        reason = reasons.ALLOWED if upstream.status_code < 400 else reasons.UPSTREAM_ERROR
        is_sse = upstream.headers.get("content-type", "").startswith("text/event-stream")
        if not is_sse:
            raw = await upstream.aread()
            await upstream.aclose()
            usage = from_body(raw)
            deps.budgets.charge(agent_key, usage.prompt_tokens, usage.completion_tokens)
            clean = scrub(raw, pairs)
            log(
                call,
                allow=True,
                reason=reason,
                status=upstream.status_code,
                bytes_out=len(clean),
                usage=usage,
            )
            return Response(clean, status_code=upstream.status_code, headers=out_headers)

        stream_usage = StreamUsage()
        scrubber = StreamScrubber(pairs)

        async def relay() -> AsyncIterator[bytes]:
            sent = 0
            error = None
            try:
                async for chunk in upstream.aiter_raw():
                    stream_usage.feed(chunk)
                    out = scrubber.feed(chunk)
                    if out:
                        sent += len(out)
                        yield out
                tail = scrubber.feed(b"")
                if tail:
                    sent += len(tail)
                    yield tail
            except httpx.HTTPError as e:
                error = f"{reasons.UPSTREAM_ERROR}: {type(e).__name__}"
            finally:
                await upstream.aclose()
                u = stream_usage.usage
                deps.budgets.charge(agent_key, u.prompt_tokens, u.completion_tokens)
                log(
                    call,
                    allow=True,
                    reason=reason if error is None else reasons.UPSTREAM_ERROR,
                    status=upstream.status_code,
                    bytes_out=sent,
                    usage=u,
                    error=error,
                )

        return StreamingResponse(relay(), status_code=upstream.status_code, headers=out_headers)

    methods = ["GET", "POST", "DELETE"]
    return Starlette(routes=[StarletteRoute("/{route}/v1/{path:path}", handle, methods=methods)])
