"""Upstream: the one place where upstream connections are dialled.

mitmproxy opens server connections lazily (``connection_strategy=lazy``), only for a request
that passed every hook. ``server_connect`` is the last gate: the address must be one a decision
allowed on this client connection, else the dial is refused. Upstream TLS is verified against
the system store plus the configured bundle (proxy options); a failure is classified so the
decision event says ``upstream_tls_failed`` rather than a generic error. Upstream responses
cannot forge the proxy's own ``X-Egress-*`` headers: they are stripped on the way back.
"""

from __future__ import annotations

import weakref

from mitmproxy import connection, http, tls
from mitmproxy.proxy import server_hooks

from egress import reasons
from egress.proxy import flowstate, replies
from egress.proxy.flowstate import ConnRegistry

_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE", "CONNECT"})


class Upstream:
    def __init__(self, conns: ConnRegistry) -> None:
        self.conns = conns
        self.refused_dials = 0
        # server connection -> the name it was asked for, restored once connected so that
        # mitmproxy reuses the connection for later requests to the same name
        self._names: weakref.WeakKeyDictionary[connection.Server, tuple[str, int]] = (
            weakref.WeakKeyDictionary()
        )

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        state = self.conns.peek(data.client)
        address = data.server.address
        if address is None:
            data.server.error = reasons.DIAL_NOT_AUTHORIZED
            self.refused_dials += 1
            return
        key = (str(address[0]).lower(), int(address[1]))
        resolved = state.resolved.get(key) if state is not None else None
        if state is None or key not in state.allowed_dials or resolved is None:
            data.server.error = f"{reasons.DIAL_NOT_AUTHORIZED}: no decision allowed {key}"
            self.refused_dials += 1
            return
        # dial exactly the address that was checked; TLS keeps verifying the name (sni)
        self._names[data.server] = (str(address[0]), int(address[1]))
        if data.server.sni and data.server.sni.endswith("."):
            # "host." is the same DNS name; OpenSSL's name check refuses the dot, and mitmproxy
            # then never starts the handshake (the client waited for nothing until its timeout)
            data.server.sni = data.server.sni.rstrip(".")
        data.server.address = (str(resolved.ip), key[1])

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        name = self._names.pop(data.server, None)
        if name is not None:
            # mitmproxy guards `address` on open connections; the socket is already connected
            # to the checked IP (see `peername`), and restoring the name only lets later
            # requests for the same name reuse this connection instead of dialling again
            object.__setattr__(data.server, "address", name)

    def tls_failed_server(self, data: tls.TlsData) -> None:
        state = self.conns.peek(data.context.client)
        if state is not None:
            state.upstream_error = reasons.UPSTREAM_TLS_FAILED

    def request(self, flow: http.HTTPFlow) -> None:
        """A body from an HTTP/2 (or 3) agent carries no length of its own: the frames end it.
        Relayed to an HTTP/1.1 upstream without Content-Length or Transfer-Encoding, the
        upstream would read it as a second request, one no decision saw (request smuggling).
        The body is buffered here (egress never streams requests), so its length is known."""
        if flow.response or flow.error or not flow.live:
            return
        req = flow.request
        if not (req.is_http2 or req.is_http3) or req.raw_content is None:
            return
        if "content-length" in req.headers or "transfer-encoding" in req.headers:
            return
        if req.raw_content or req.method.upper() not in _BODILESS:
            req.headers["content-length"] = str(len(req.raw_content))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or flow.metadata.get(flowstate.DENIED):
            return
        headers = flow.response.headers
        for name in list(headers.keys()):
            if name.lower().startswith(replies.OWN_HEADER_PREFIX):
                del headers[name]
        decision_id = flow.metadata.get(flowstate.DECISION_ID)
        if decision_id:
            headers[replies.DECISION_ID_HEADER] = decision_id

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.error is None or flow.metadata.get(flowstate.UPSTREAM_REASON):
            return
        msg = flow.error.msg.lower()
        state = self.conns.peek(flow.client_conn)
        undecided = flowstate.DECISION not in flow.metadata and not flow.metadata.get(
            flowstate.DENIED
        )
        if undecided and ("from client" in msg or "protocol error" in msg):
            # mitmproxy's parser refused the request before any hook could decide it
            reason = reasons.HTTP_MALFORMED
            flow.metadata[flowstate.ERROR_STATUS] = 400 if "refusing" in msg else None
        elif flow.response is not None:
            reason = reasons.UPSTREAM_ERROR
        elif reasons.DIAL_NOT_AUTHORIZED in msg:
            reason = reasons.DIAL_NOT_AUTHORIZED
        elif (state is not None and state.upstream_error) or "tls" in msg or "certificate" in msg:
            reason = reasons.UPSTREAM_TLS_FAILED
            if state is not None:
                state.upstream_error = None
        elif "client disconnected" in msg or "killed" in msg:
            reason = reasons.CLIENT_ABORTED
        else:
            reason = reasons.UPSTREAM_CONNECT_FAILED
        flow.metadata[flowstate.UPSTREAM_REASON] = reason
