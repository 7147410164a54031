"""The gateway's ASGI app: ``/{route}/v1/{path}`` through the stations, in the proxy's order.

  identify -> route -> authorize -> budget -> credential   (egress/gateway/stations.py)
  -> forward -> account                                    (egress/gateway/forward.py)

The first station that refuses answers (with a reason code and a decision event); see the
stations' module for what each checks and the status it answers with. Upstream errors pass
through with their status, connection failures are 502. The agent's own Authorization never
reaches the upstream; echoed keys are scrubbed.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from egress import reasons
from egress.gateway.call import Call, GatewayDeps, Refused, account, refusal
from egress.gateway.forward import answer, forward
from egress.gateway.stations import STATIONS

__all__ = ["GatewayDeps", "build_app", "handle"]

METHODS = ["GET", "POST", "DELETE"]


async def handle(deps: GatewayDeps, request: Request) -> Response:
    """One request, station by station; every path out writes exactly one decision event."""
    call = Call(request)
    try:
        for station in STATIONS:
            await station(deps, call)
    except Refused as r:
        account(deps, call, allow=False, reason=r.reason, status=r.status)
        return refusal(call, r.status, r.reason, r.message, r.headers)
    try:
        upstream = await forward(deps, call)
    except httpx.HTTPError as e:
        # the policy allowed the call; only the upstream failed, so the event says allow
        reason = reasons.UPSTREAM_CONNECT_FAILED
        account(deps, call, allow=True, reason=reason, status=502, error=type(e).__name__)
        return refusal(call, 502, reason, "upstream unreachable")
    return await answer(deps, call, upstream)


def build_app(deps: GatewayDeps) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return await handle(deps, request)

    return Starlette(routes=[StarletteRoute("/{route}/v1/{path:path}", endpoint, methods=METHODS)])
