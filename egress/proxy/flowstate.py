"""How the addons talk: flow metadata keys and per-client-connection state.

Per-connection state lives in a ``WeakKeyDictionary`` keyed by mitmproxy's ``Client`` object,
so it disappears with the connection and never leaks between agents.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass, field
from typing import Any, Final

from mitmproxy import connection

from egress.destination.resolver import Resolved
from egress.identity.model import Identity

IDENTITY: Final = "egress.identity.model"  # Identity
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
# status mitmproxy answered in place of an upstream response it refused (not the response's)
ANSWERED_STATUS: Final = "egress.answered_status"
DIAL_ADDRESS: Final = "egress.dial_address"  # (ip, port) the request's upstream is dialled at
TUNNEL_BYTES: Final = "egress.tunnel_bytes"  # [from client, from server] of a passthrough
AS_SENT: Final = "egress.as_sent"  # dict: the request as the agent sent it (before any swap)
WS_REFUSED: Final = "egress.ws_refused"  # dict: a refused WebSocket message, for its event
BODY_RESERVED: Final = "egress.body_reserved"  # {"request"/"response": bytes} of the budget
BODY_REFUSED: Final = "egress.body_refused"  # True: refused by the body memory budget


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
    # identity per request: (agent name, token SHA-256) proved on this connection, and the
    # identities revision at which it was last found valid
    credential: tuple[str, str] | None = None
    identity_revision: int = -1
    revoked: bool = False
    # liveness (time.monotonic()), kept by the Sessions addon for its timeouts
    opened: float = 0.0
    idle_since: float = 0.0  # connected, or the last answer finished
    head_started: float | None = None  # first client byte since idle_since
    in_flight: int = 0  # requests read but not yet answered
    closed_by: str | None = None  # "reason: detail" when the proxy itself closed it (sweeper)
    tunnel_kind: str | None = None  # "passthrough" or "websocket" once the connection is one
    tunnel_activity: float = 0.0  # last message either way in that tunnel
    counted_agent: str | None = None  # "user/agent" this connection counts against


def source_of(client: connection.Client) -> str:
    """The source a client connection is counted under: its IPv4 address, or its IPv6 /64
    (one host commonly holds a whole /64, so single IPv6 addresses would not bound it)."""
    host = str(client.peername[0]) if client.peername else ""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ConnRegistry:
    def __init__(self) -> None:
        self._states: weakref.WeakKeyDictionary[connection.Client, ConnState] = (
            weakref.WeakKeyDictionary()
        )
        # live client connections (by mitmproxy's client id) and how many each agent holds:
        # the Sessions addon sweeps the first, the Limits addon caps the second
        self.live: dict[str, connection.Client] = {}
        self.per_agent: dict[str, int] = {}
        # live connections not (yet) counted against an agent, oldest first, and how many
        # each source holds: the Limits addon caps both and evicts from the front
        self.unauth: dict[str, connection.Client] = {}
        self.unauth_per_source: dict[str, int] = {}

    def opened(self, client: connection.Client) -> None:
        self.live[client.id] = client
        self.unauth[client.id] = client
        source = source_of(client)
        self.unauth_per_source[source] = self.unauth_per_source.get(source, 0) + 1

    def drop(self, client: connection.Client) -> None:
        """The proxy itself is closing this connection: it no longer counts as live."""
        self.live.pop(client.id, None)
        self._authenticated(client)

    def closed(self, client: connection.Client) -> None:
        self.drop(client)
        state = self._states.get(client)
        if state is not None and state.counted_agent is not None:
            left = self.per_agent.get(state.counted_agent, 1) - 1
            if left > 0:
                self.per_agent[state.counted_agent] = left
            else:
                self.per_agent.pop(state.counted_agent, None)
            state.counted_agent = None

    def count_agent(self, client: connection.Client, state: ConnState, key: str) -> None:
        state.counted_agent = key
        self.per_agent[key] = self.per_agent.get(key, 0) + 1
        self._authenticated(client)

    def _authenticated(self, client: connection.Client) -> None:
        # leaves the unauthenticated books (proved an identity, or gone); idempotent
        if self.unauth.pop(client.id, None) is None:
            return
        source = source_of(client)
        left = self.unauth_per_source.get(source, 1) - 1
        if left > 0:
            self.unauth_per_source[source] = left
        else:
            self.unauth_per_source.pop(source, None)

    def unauthenticated(self) -> int:
        """Live connections that have not proved an identity (yet)."""
        return len(self.unauth)

    def get(self, client: connection.Client) -> ConnState:
        state = self._states.get(client)
        if state is None:
            state = self._states[client] = ConnState()
        return state

    def peek(self, client: connection.Client) -> ConnState | None:
        return self._states.get(client)
