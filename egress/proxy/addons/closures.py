"""Decision events for what the proxy does to a connection outside any request.

Closing a revoked or idle connection, or turning one away at the connection cap, answers no
request, yet it is a decision an auditor must see. These events have ``kind: "connection"``,
no policy input, the agent when one was proved, and the reason code; they go through the
DecisionLog addon's writer and observers like every other event.
"""

from __future__ import annotations

import time
from typing import Any

from mitmproxy import connection, ctx

from egress.audit import new_decision_id
from egress.audit.events import event_result, make_event, utc_timestamp
from egress.identity.model import Identity


def connection_event(
    client: connection.Client,
    *,
    reason: str,
    detail: str,
    identity: Identity | None = None,
    target: tuple[str, int] | None = None,
    status: int | None = None,
    mode: str = "enforce",
    decision_id: str | None = None,
) -> dict[str, Any]:
    host, port = target or ("", 0)
    return make_event(
        decision_id=decision_id or new_decision_id(),
        timestamp=utc_timestamp(time.time()),
        kind="connection",
        agent=identity.as_policy_input() if identity else None,
        policy_input=None,
        request={
            "method": "CONNECT" if target else "",
            "scheme": "",
            "host": host,
            "port": port,
            "path": "",
            "http_version": "",
        },
        result=event_result(None, allow=False, reason=reason, mode=mode),
        secrets=[],
        status=status,
        bytes_in=0,
        bytes_out=0,
        decision_ms=None,
        total_ms=round((time.time() - client.timestamp_start) * 1000, 3),
        error=f"{reason}: {detail}",
        labels={},
    )


def submit(event: dict[str, Any]) -> None:
    """Hand the event to the DecisionLog addon's writer (its labels, its observers)."""
    log = ctx.master.addons.get("decisionlog")
    if log is None:
        return
    event["labels"] = log.labels
    for observe in log.observers:
        observe(event)
    log.writer.submit(event)
    log.events += 1


def handler_of(client: connection.Client) -> Any:
    """mitmproxy's handler of a live client connection (it can close it), or None."""
    server = ctx.master.addons.get("proxyserver")
    return server.connections.get(client.id) if server is not None else None
