"""How the addons talk: flow metadata keys and per-client-connection state.

Per-connection state lives in a ``WeakKeyDictionary`` keyed by mitmproxy's ``Client`` object,
so it disappears with the connection and never leaks between agents.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Final

from mitmproxy import connection

from egress.identity import Identity
from egress.resolver import Resolved

IDENTITY: Final = "egress.identity"  # Identity
TUNNEL_KILLED: Final = "egress.tunnel_killed"  # passthrough tunnel closed by the kill switch
DECISION: Final = "egress.decision"  # Decision
DECISION_ID: Final = "egress.decision_id"  # str
DECISION_MS: Final = "egress.decision_ms"  # float
INPUT: Final = "egress.input"  # the policy input the decision was made on
WOULD_DENY: Final = "egress.would_deny"  # report mode: the reason the policy would deny
DENIED: Final = "egress.denied"  # reason code of a proxy-made refusal
SECRETS_USED: Final = "egress.secrets"  # list[str] names swapped in
RESPONSE_BYTES: Final = "egress.response_bytes"  # int, for streamed bodies
LOGGED: Final = "egress.logged"  # True once the decision event is submitted
UPSTREAM_REASON: Final = "egress.upstream_reason"  # why the request failed (error hook)
ERROR_STATUS: Final = "egress.error_status"  # status mitmproxy answered on such an error
TUNNEL_BYTES: Final = "egress.tunnel_bytes"  # [from client, from server] of a passthrough
AS_SENT: Final = "egress.as_sent"  # dict: the request as the agent sent it (before any swap)
WS_REFUSED: Final = "egress.ws_refused"  # dict: a refused WebSocket message, for its event


@dataclass
class ConnState:
    identity: Identity | None = None
    connect_target: tuple[str, int] | None = None  # (host, port) of the CONNECT, if tunnelled
    allowed_dials: set[tuple[str, int]] = field(default_factory=set)
    # (host, port) -> the checked address to dial; resolved once per client connection
    resolved: dict[tuple[str, int], Resolved] = field(default_factory=dict)
    upstream_error: str | None = None
    # passthrough: the CONNECT was allowed to a host marked "inspect": false
    passthrough: bool = False
    passthrough_started: bool = False
    tunnel: dict[str, Any] = field(default_factory=dict)  # what the tunnel event needs


class ConnRegistry:
    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[connection.Client, ConnState] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, client: connection.Client) -> ConnState:
        state = self._states.get(client)
        if state is None:
            state = self._states[client] = ConnState()
        return state

    def peek(self, client: connection.Client) -> ConnState | None:
        return self._states.get(client)
