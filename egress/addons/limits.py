"""Limits: how many connections an agent (or nobody yet) may hold, and the body budget's books.

- Connections that have not proved an identity are capped as a group (``max_unauthenticated``):
  past it a new connection is answered 429 ``too_many_connections`` and closed before a byte is
  read, so a flood of anonymous sockets cannot crowd out registered agents.
- Each agent (user/agent) may hold ``max_per_agent`` connections; the one past the cap gets 429
  on its CONNECT (or first plain request) and is closed. Other agents are unaffected.
- Bodies refused by the global body budget (egress.body_budget) are logged here as
  ``body_too_large``, and a failed flow's reservation is released (a finished one is released
  by the budget itself once its answer is handed to the client).
"""

from __future__ import annotations

from mitmproxy import connection, http
from mitmproxy.net.http.http1 import assemble_response

from egress import flowstate, reasons, replies
from egress.addons.closures import connection_event, handler_of, submit
from egress.audit import new_decision_id
from egress.body_budget import BodyBudget
from egress.flowstate import ConnRegistry
from egress.identity import Identity


class Limits:
    def __init__(
        self,
        conns: ConnRegistry,
        budget: BodyBudget,
        *,
        max_per_agent: int = 0,
        max_unauthenticated: int = 0,
    ) -> None:
        self.conns = conns
        self.budget = budget
        self.max_per_agent = max_per_agent  # 0: no cap
        self.max_unauthenticated = max_unauthenticated  # 0: no cap

    # -- connection caps --------------------------------------------------------------------
    def client_connected(self, client: connection.Client) -> None:
        # Sessions (earlier in the pipeline) counted this one in conns.live already
        if not self.max_unauthenticated or self.conns.unauthenticated() <= self.max_unauthenticated:
            return
        decision_id = new_decision_id()
        handler = handler_of(client)
        writer = handler.transports[client].writer if handler is not None else None
        if writer is not None:  # nothing read yet: the client is a plain HTTP/1 proxy client
            answer = replies.refusal(429, reasons.TOO_MANY_CONNECTIONS, decision_id)
            answer.headers["Connection"] = "close"
            writer.write(assemble_response(answer))
        client.error = reasons.TOO_MANY_CONNECTIONS  # mitmproxy closes it without reading
        self.conns.live.pop(client.id, None)
        submit(
            connection_event(
                client,
                reason=reasons.TOO_MANY_CONNECTIONS,
                detail="over the cap of unauthenticated connections",
                status=429,
                decision_id=decision_id,
            )
        )

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
        self.conns.count_agent(state, key)

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
