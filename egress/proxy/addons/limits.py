"""Limits: how many connections an agent (or nobody yet) may hold, and the body budget's books.

- Connections that have not proved an identity are capped per source address
  (``max_unauthenticated_per_source``; IPv6 per /64): past it the source's new connection is
  answered 429 ``too_many_connections`` and closed before a byte is read.
- They are also capped as a group (``max_unauthenticated``). Refusing newcomers there would
  hand any flood from many sources a lock-out lever (every agent's next connection is
  unauthenticated until its first head arrives), so the newcomer is kept and the oldest
  silent unauthenticated connection (no head begun; else simply the oldest) is closed instead.
  A legitimate client leaves the group within one round trip; a flood's sockets are the old ones.
- Each agent (user/agent) may hold ``max_per_agent`` connections; the one past the cap gets 429
  on its CONNECT (or first plain request) and is closed. Other agents are unaffected.
- Bodies refused by the global body budget (egress.proxy.body_budget) are logged here as
  ``body_too_large``, and a failed flow's reservation is released (a finished one is released
  by the budget itself once its answer is handed to the client).

Every refusal and eviction writes a ``kind: "connection"`` event with that reason.
"""

from __future__ import annotations

import fcntl
import struct
import termios

from mitmproxy import connection, http
from mitmproxy.net.http.http1 import assemble_response

from egress import reasons
from egress.audit import new_decision_id
from egress.identity.model import Identity
from egress.proxy import flowstate, replies
from egress.proxy.addons.closures import connection_event, handler_of, submit
from egress.proxy.body_budget import BodyBudget
from egress.proxy.flowstate import ConnRegistry, source_of


def _unread_bytes(client: connection.Client) -> int:
    """Bytes this client sent that mitmproxy has not consumed yet: buffered by its asyncio
    stream (read off the socket as soon as it was readable) or still in the kernel."""
    handler = handler_of(client)
    transport = handler.transports.get(client) if handler is not None else None
    if transport is None:
        return 0
    buffered = len(getattr(transport.reader, "_buffer", b""))
    sock = transport.writer.get_extra_info("socket") if transport.writer is not None else None
    if buffered or sock is None:
        return buffered
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", waiting)[0])


class Limits:
    def __init__(
        self,
        conns: ConnRegistry,
        budget: BodyBudget,
        *,
        max_per_agent: int = 0,
        max_unauthenticated: int = 0,
        max_unauthenticated_per_source: int = 0,
    ) -> None:
        self.conns = conns
        self.budget = budget
        self.max_per_agent = max_per_agent  # 0: no cap
        self.max_unauthenticated = max_unauthenticated  # 0: no cap
        self.max_unauthenticated_per_source = max_unauthenticated_per_source  # 0: no cap

    # -- connection caps --------------------------------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        # Sessions (earlier in the pipeline) counted this one in conns already
        per_source = self.max_unauthenticated_per_source
        if per_source and self.conns.unauth_per_source.get(source_of(client), 0) > per_source:
            detail = f"over the cap of {per_source} unauthenticated connections from one source"
            self._turn_away(client, detail, newcomer=True)
            return
        while self.max_unauthenticated and self.conns.unauthenticated() > self.max_unauthenticated:
            oldest = self._oldest_unauthenticated(besides=client)
            if oldest is None:  # only the newcomer (a cap below one is not a cap to keep)
                self._turn_away(
                    client, "over the cap of unauthenticated connections", newcomer=True
                )
                return
            self._turn_away(
                oldest,
                f"evicted: the pool of {self.max_unauthenticated} unauthenticated connections"
                " is full and this one is the oldest",
                newcomer=False,
            )

    def _oldest_unauthenticated(self, besides: connection.Client) -> connection.Client | None:
        """The oldest unauthenticated connection that has sent nothing since it opened (or
        since its last answer), else the oldest one at all; never ``besides``."""
        oldest = None
        for client in self.conns.unauth.values():
            if client is besides:
                continue
            state = self.conns.peek(client)
            silent = state is None or (state.head_started is None and not state.in_flight)
            # bytes the proxy has not read yet also count: when accepts queue up under a
            # flood, an agent's head waits in the kernel while newer sockets are handled
            if silent and not _unread_bytes(client):
                return client
            oldest = oldest or client
        return oldest

    def _turn_away(self, client: connection.Client, detail: str, *, newcomer: bool) -> None:
        decision_id = new_decision_id()
        state = self.conns.peek(client)
        handler = handler_of(client)
        transport = handler.transports.get(client) if handler is not None else None
        writer = transport.writer if transport is not None else None
        status = None
        # a silent plain HTTP/1 conversation can be answered; inside TLS or mid-head it cannot
        silent = state is None or (state.head_started is None and not state.in_flight)
        if writer is not None and silent and not client.tls_established and not client.alpn:
            status = 429
            answer = replies.refusal(429, reasons.TOO_MANY_CONNECTIONS, decision_id)
            answer.headers["Connection"] = "close"
            writer.write(assemble_response(answer))
        self.conns.drop(client)
        if state is not None:
            state.closed_by = f"{reasons.TOO_MANY_CONNECTIONS}: {detail}"
        if transport is None and not newcomer:
            return  # already gone: nothing to close, nothing decided
        submit(
            connection_event(
                client,
                reason=reasons.TOO_MANY_CONNECTIONS,
                detail=detail,
                status=status,
                decision_id=decision_id,
            )
        )
        if newcomer:
            client.error = reasons.TOO_MANY_CONNECTIONS  # mitmproxy closes it without reading
        elif handler is not None:
            handler.close_connection(client)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._count(flow)

    def request(self, flow: http.HTTPFlow) -> None:
        self._count(flow)

    def _count(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        state = self.conns.get(flow.client_conn)
        if identity is None or state.counted_agent is not None:
            return
        key = f"{identity.user}/{identity.agent}"
        if self.max_per_agent and self.conns.per_agent.get(key, 0) >= self.max_per_agent:
            decision_id = new_decision_id()
            flow.metadata[flowstate.DECISION_ID] = decision_id
            flow.metadata[flowstate.DENIED] = reasons.TOO_MANY_CONNECTIONS
            flow.response = replies.refusal(429, reasons.TOO_MANY_CONNECTIONS, decision_id)
            if flow.request.http_version.startswith("HTTP/1"):
                flow.response.headers["Connection"] = "close"
            return
        self.conns.count_agent(flow.client_conn, state, key)

    # -- body budget ------------------------------------------------------------------------
    def error(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(flowstate.BODY_REFUSED) and not flow.metadata.get(flowstate.DENIED):
            state = self.conns.peek(flow.client_conn)
            if state is not None and state.identity is not None:
                flow.metadata.setdefault(flowstate.IDENTITY, state.identity)
            flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
            flow.metadata[flowstate.DENIED] = reasons.BODY_TOO_LARGE
            # nothing went upstream: keep Upstream from classifying this as a dial failure
            flow.metadata[flowstate.UPSTREAM_REASON] = reasons.BODY_TOO_LARGE
        self.budget.release(flow.metadata)
