"""A real WebSocket client through the proxy: wsproto over a CONNECT tunnel with TLS (wss), or
over a plain proxy connection (ws, absolute-form upgrade request)."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from tests.support.clients import open_tunnel
from tests.support.proxy import ProxyProcess, basic


@dataclass
class Closed:
    code: int
    reason: str


class WsClient:
    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: list[Event] = []
        self.extensions: list[str] = []

    def handshake(
        self, host: str, target: str, *, deflate: bool = False, headers: list[tuple[str, str]] = ()
    ) -> None:
        request = Request(
            host=host,
            target=target,
            extensions=[PerMessageDeflate()] if deflate else [],
            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
        )
        self.sock.sendall(self.ws.send(request))
        event = self._next()
        if not isinstance(event, AcceptConnection):
            status = event.status_code if isinstance(event, RejectConnection) else None
            raise AssertionError(f"upgrade refused: {status} {event!r}")
        self.extensions = [e.name for e in event.extensions]

    def send(self, data: str | bytes, fragments: int = 1) -> None:
        step = max(1, -(-len(data) // fragments))
        parts = [data[i : i + step] for i in range(0, len(data), step)] or [data]
        out = b""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(part, str):
                out += self.ws.send(TextMessage(part, message_finished=last))
            else:
                out += self.ws.send(BytesMessage(part, message_finished=last))
        self.sock.sendall(out)

    def ping(self, payload: bytes) -> None:
        self.sock.sendall(self.ws.send(Ping(payload)))

    def close_with(self, code: int, reason: str) -> None:
        """Send a close frame and wait for the peer's."""
        self.sock.sendall(self.ws.send(CloseConnection(code, reason)))
        while not isinstance(self._next(), CloseConnection):
            pass

    def recv(self) -> str | bytes | Ping | Closed:
        """The next whole message, Ping, or the close frame (as Closed)."""
        chunks: list[str | bytes] = []
        while True:
            event = self._next()
            if isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
                return event
            if isinstance(event, CloseConnection):
                return Closed(event.code, event.reason or "")
            if isinstance(event, Message):
                chunks.append(event.data)
                if event.message_finished:
                    if isinstance(event.data, str):
                        return "".join(chunks)  # type: ignore[arg-type]
                    return b"".join(chunks)  # type: ignore[arg-type]

    def _next(self) -> Event:
        while not self.pending:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.pending.extend(self.ws.events())
            if not data and not self.pending:
                return CloseConnection(1006, "connection closed without a close frame")
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


def wss_through(
    proxy: ProxyProcess, agent, host: str, port: int, path: str = "/ws", **kw
) -> WsClient:
    """wss://host:port/path through a CONNECT tunnel, TLS intercepted by the proxy."""
    tunnel = open_tunnel(proxy, agent, f"{host}:{port}", host if host != "127.0.0.1" else None)
    client = WsClient(tunnel.sock)
    client.handshake(f"{host}:{port}", path, **kw)
    return client


def ws_through(proxy: ProxyProcess, agent, host: str, port: int, path: str = "/ws") -> WsClient:
    """ws://host:port/path: a plain upgrade sent to the proxy in absolute form."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    client = WsClient(sock)
    client.handshake(
        f"{host}:{port}",
        f"http://{host}:{port}{path}",
        headers=[("Proxy-Authorization", basic(agent.name, agent.token))],
    )
    return client
