"""Sessions: live client connections, closed when their credential is revoked or they idle.

mitmproxy only checks identity where a hook runs; a keep-alive tunnel that sends nothing, a
passthrough relay or an open WebSocket would outlive ``egress agents revoke``. A sweeper task
looks at every live connection four times a second:

- its credential is no longer in the identities file  -> closed, ``credential_revoked``
- its agent is on the kill list pushed by the Kubernetes API (``--kill-watch``)
                                                 -> closed, ``agent_killed``
- a passthrough or WebSocket tunnel silent both ways past ``tunnel_idle``  -> ``idle_timeout``
- no request under way and no byte since the last answer past ``idle``     -> ``idle_timeout``
- a request head begun (or a fresh connection) but not complete within ``head``
                                                 -> ``request_head_timeout`` (408 if plain)
  (the head clock starts at connect, or at the first byte after an answer or after the TLS
  handshake inside a tunnel; frames an HTTP/2 client sends between requests do not start it)

Each closure writes one ``kind: "connection"`` decision event with its reason. "Byte from the
client" is observed by wrapping the client stream's ``read`` (mitmproxy has no hook for raw
bytes); everything else comes from the request, response and tunnel hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from mitmproxy import connection, http, tcp, tls
from mitmproxy.proxy.layers.http import _http1

from egress import reasons
from egress.identity.credentials import IdentitiesFile
from egress.policy.kill import KillSet
from egress.proxy.addons.closures import connection_event, handler_of, submit
from egress.proxy.flowstate import ConnRegistry, ConnState

log = logging.getLogger("egress.sessions")

SWEEP_SECONDS = 0.25  # revocation reaches an idle connection within this (+ one file stat)


@dataclass(frozen=True)
class Timeouts:
    """Seconds; 0 turns a timeout off."""

    head: float = 10.0  # from connect (or first byte after an answer) to a complete head
    idle: float = 60.0  # keep-alive connection with no request under way, no byte sent
    tunnel_idle: float = 300.0  # passthrough / WebSocket with no message either way


class Sessions:
    def __init__(
        self,
        identities: IdentitiesFile,
        conns: ConnRegistry,
        timeouts: Timeouts = Timeouts(),
        kills: KillSet | None = None,
    ) -> None:
        self.identities = identities
        self.conns = conns
        self.timeouts = timeouts
        self.kills = kills
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sweep_forever(), name="egress-sessions")

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def client_connected(self, client: connection.Client) -> None:
        state = self.conns.get(client)
        state.opened = state.idle_since = time.monotonic()
        self.conns.opened(client)
        handler = handler_of(client)
        reader = handler.transports[client].reader if handler is not None else None
        read = getattr(reader, "read", None)
        if read is None:
            return

        async def read_and_note(n: int = -1) -> bytes:
            data: bytes = await read(n)
            if data:
                now = time.monotonic()
                if state.head_started is None and state.in_flight == 0:
                    state.head_started = now
                if state.tunnel_kind is not None:
                    state.tunnel_activity = now
            return data

        with contextlib.suppress(AttributeError):  # a stream type that cannot be wrapped
            reader.read = read_and_note  # type: ignore[union-attr]

    def client_disconnected(self, client: connection.Client) -> None:
        self.conns.closed(client)

    # -- what the connection is doing -----------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        self._answered(flow.client_conn)  # the CONNECT head is complete; its answer follows

    def tls_established_client(self, data: tls.TlsData) -> None:
        # a finished handshake is not a request begun: the tunnel now waits on the idle clock
        self._answered(data.context.client)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        state = self.conns.get(flow.client_conn)
        state.in_flight += 1
        state.head_started = None

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and flow.response.status_code == 101:
            return  # becomes a WebSocket: websocket_start takes over
        self._finished(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._finished(flow)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        state = self.conns.get(flow.client_conn)
        state.tunnel_kind, state.tunnel_activity = "websocket", time.monotonic()

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        self.conns.get(flow.client_conn).tunnel_activity = time.monotonic()

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        state = self.conns.get(flow.client_conn)
        state.tunnel_kind = None
        self._finished(flow)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        state = self.conns.get(flow.client_conn)
        state.tunnel_kind, state.tunnel_activity = "passthrough", time.monotonic()

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        self.conns.get(flow.client_conn).tunnel_activity = time.monotonic()

    def _finished(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT":
            return
        state = self.conns.get(flow.client_conn)
        state.in_flight = max(0, state.in_flight - 1)
        if state.in_flight == 0:
            self._answered(flow.client_conn)

    def _answered(self, client: connection.Client) -> None:
        state = self.conns.get(client)
        state.idle_since, state.head_started = time.monotonic(), None

    # -- the sweeper --------------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()

    def sweep(self) -> None:
        revision = self.identities.refresh()
        now = time.monotonic()
        for client in list(self.conns.live.values()):
            state = self.conns.peek(client)
            if state is None:
                continue
            try:
                verdict = self._verdict(state, revision, now, h2=client.alpn == b"h2")
                if verdict is not None:
                    self._close(client, state, *verdict)
            except Exception as e:  # one bad connection must not stop the sweep of the others
                log.warning("sessions sweep %s: %s: %s", client.peername, type(e).__name__, e)

    def _verdict(
        self, state: ConnState, revision: int, now: float, *, h2: bool = False
    ) -> tuple[str, str] | None:
        """(reason, detail) when the connection must close now, else None."""
        who = state.identity
        # requests are denied agent_killed by the policy wrapper; this reaches the
        # connections that send no request: idle keep-alive, WebSocket, passthrough
        if self.kills is not None and who is not None and self.kills.killed(who.user, who.agent):
            return reasons.AGENT_KILLED, "the agent's kill switch is on"
        if state.credential is not None and state.identity_revision != revision:
            if state.revoked or self.identities.still_valid(*state.credential) is None:
                state.revoked = True
                return reasons.CREDENTIAL_REVOKED, "the connection's credential was revoked"
            state.identity_revision = revision
        t = self.timeouts
        if state.tunnel_kind is not None:
            if t.tunnel_idle and now - state.tunnel_activity > t.tunnel_idle:
                return reasons.IDLE_TIMEOUT, f"{state.tunnel_kind} tunnel idle {t.tunnel_idle:g}s"
            return None
        if state.in_flight:
            return None  # a request is under way; mitmproxy's tcp_timeout bounds a stalled one
        fresh = state.idle_since == state.opened  # nothing answered yet: the clock runs
        # an HTTP/2 client sends frames between requests (WINDOW_UPDATE, PING, SETTINGS ACK)
        # that begin no request: on such a connection only the idle clock runs
        begun_head = state.head_started is not None and not h2
        if fresh or begun_head:  # from connect, else from the first byte after an answer
            begun = state.opened if fresh else (state.head_started or now)
            if t.head and now - begun > t.head:
                return reasons.REQUEST_HEAD_TIMEOUT, f"no complete request head in {t.head:g}s"
        elif t.idle and now - state.idle_since > t.idle:
            return reasons.IDLE_TIMEOUT, f"keep-alive connection idle {t.idle:g}s"
        return None

    def _close(self, client: connection.Client, state: ConnState, reason: str, detail: str) -> None:
        handler = handler_of(client)
        if handler is None or client not in handler.transports:
            return
        status = None
        writer = handler.transports[client].writer
        if (
            reason == reasons.REQUEST_HEAD_TIMEOUT
            and state.connect_target is None
            and not client.tls_established
            and writer is not None
        ):
            status = 408  # a plain HTTP/1 conversation can still be answered
            writer.write(_http1.make_error_response(408, f"{reason}: {detail}"))
        event = connection_event(
            client,
            reason=reason,
            detail=f"{detail}; connection closed by the proxy",
            identity=state.identity,
            target=state.connect_target,
            status=status,
            mode="passthrough" if state.tunnel_kind == "passthrough" else "enforce",
        )
        submit(event)
        state.closed_by = f"{reason}: {detail}; connection closed by the proxy"
        self.conns.drop(client)  # one closure, one event
        handler.close_connection(client)


__all__ = ["Sessions", "Timeouts"]
