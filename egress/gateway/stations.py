"""The gateway's stations before the upstream, in the proxy's order; the first refusal answers.

  identify    credential in ``Authorization`` (service-account JWT or egress token) -> 401
  route       the route exists -> 404 route_unknown; a POST body is a JSON object within
              the size limit -> 413/400 http_malformed (the model named in it is read here)
  authorize   policy ``phase: "gateway"`` admits agent, route, model -> 403
  budget      requests/min and tokens/day budgets -> 429 + Retry-After
  credential  the agent's upstream key for the route is listed by the policy and stored ->
              403 secret_not_allowed / secret_unavailable (fail closed); the key's host binding
              admits the route's upstream host and the upstream is https unless the key allows
              plain http -> 403 secret_host_not_bound / secret_plaintext_refused

Each station is ``async (deps, call) -> None``: it records what it learnt on the ``Call`` or
raises ``Refused``. Forwarding and accounting follow in :mod:`egress.gateway.forward`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

import orjson

from egress import reasons
from egress.errors import IdentityError, SecretStoreError
from egress.gateway.call import Call, GatewayDeps, Refused
from egress.policy import build_input

MAX_BODY: Final = 16 * 1024 * 1024
WWW_AUTHENTICATE: Final = 'Bearer realm="egress-gateway"'

Station = Callable[[GatewayDeps, Call], Awaitable[None]]


async def identify(deps: GatewayDeps, call: Call) -> None:
    """Who is asking: the bearer credential names one agent, or the call ends with 401."""
    try:
        call.identity = deps.identity.identify(call.request.headers.get("authorization"))
    except IdentityError as e:
        raise Refused(401, e.reason, e.message, {"WWW-Authenticate": WWW_AUTHENTICATE}) from e


async def route(deps: GatewayDeps, call: Call) -> None:
    """What is asked: a configured route and, for a POST, a JSON body naming the model."""
    call.route = deps.config.routes.get(call.request.path_params["route"])
    if call.route is None:
        raise Refused(404, reasons.ROUTE_UNKNOWN)
    if call.request.method == "POST":
        await _read_body(call)


async def _read_body(call: Call) -> None:
    # the declared length is checked before reading, so an oversized body is never buffered
    if int(call.request.headers.get("content-length") or 0) > MAX_BODY:
        raise Refused(413, reasons.HTTP_MALFORMED, "request body too large")
    call.body = await call.request.body()
    call.body_len = len(call.body)
    try:
        doc = orjson.loads(call.body) if call.body else {}
    except orjson.JSONDecodeError as e:
        raise Refused(400, reasons.HTTP_MALFORMED, "body is not JSON") from e
    if not isinstance(doc, dict):
        raise Refused(400, reasons.HTTP_MALFORMED, "body is not a JSON object")
    call.payload = doc
    call.model = str(doc["model"]) if isinstance(doc.get("model"), str) else None


async def authorize(deps: GatewayDeps, call: Call) -> None:
    """The policy decides, with ``phase: "gateway"`` and the route and model in its input."""
    target = call.target
    call.policy_input = build_input(
        call.agent,
        phase="gateway",
        scheme="https",
        host=target.host,
        port=target.port,
        method=call.request.method,
        path="/v1/" + call.request.path_params["path"],
    )
    call.policy_input["gateway"] = {"route": target.name, "model": call.model or ""}
    started = time.perf_counter()
    call.decision = await deps.engine.decide(call.policy_input)
    call.decision_ms = round((time.perf_counter() - started) * 1000, 3)
    if not call.decision.allow:
        raise Refused(403, call.decision.reason, call.decision.detail)


async def budget(deps: GatewayDeps, call: Call) -> None:
    """The agent's request rate and daily tokens have room (this request counts as one)."""
    refusal = deps.budgets.admit(call.agent_key, deps.config.limits_for(call.agent_key))
    if refusal is not None:
        raise Refused(429, refusal.reason, headers={"Retry-After": str(refusal.retry_after)})


async def credential(deps: GatewayDeps, call: Call) -> None:
    """The route's upstream key: listed by the policy, stored for this agent, allowed to go.

    Fails closed: a key the store cannot produce refuses the call rather than forwarding
    without one.
    """
    target = call.target
    allowed = call.decision.secrets if call.decision else frozenset[str]()
    if target.secret not in allowed:
        raise Refused(
            403,
            reasons.SECRET_NOT_ALLOWED,
            f"policy does not list secret {target.secret!r} for this route",
        )
    try:
        found = await deps.store.by_name(call.agent, target.secret)
    except SecretStoreError as e:
        raise Refused(403, reasons.SECRET_UNAVAILABLE, e.message) from e
    if found is None:
        raise Refused(
            403,
            reasons.SECRET_UNAVAILABLE,
            f"no upstream credential {target.secret!r} for this agent",
        )
    ref, value = found
    if not ref.admits_host(target.host):
        # the same rule as the proxy's swap: a key goes only where its binding says
        raise Refused(
            403,
            reasons.SECRET_HOST_NOT_BOUND,
            f"secret {ref.name!r} is not bound to the route's host {target.host!r}",
        )
    if target.scheme != "https" and not ref.allow_plaintext:
        raise Refused(
            403,
            reasons.SECRET_PLAINTEXT_REFUSED,
            f"secret {ref.name!r} may not travel over plain {target.scheme}",
        )
    call.key = value.reveal()
    call.secrets = [target.secret]


STATIONS: Final[tuple[Station, ...]] = (identify, route, authorize, budget, credential)
