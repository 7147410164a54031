"""A real WebSocket origin on 127.0.0.1 (TLS with the tests' CA, or plain), built on wsproto.

It accepts an upgrade on any path, negotiates permessage-deflate when the client offers it, and
records every message, Ping payload and close reason it receives (after the proxy), so tests
assert what really left the proxy.
Each message it receives is answered:
  <anything>           echoed with the same type (text or binary)
In the commands below, $NAME in DATA is replaced by the payload the test stored under NAME
(the origin "knows" the real value, as one that stored it earlier would):
  !txt DATA            DATA as one text message
  !b64 DATA            base64(DATA), text
  !pct DATA            percent-encoded DATA, text
  !json DATA           {"echo": DATA} as JSON
  !frag N DATA         DATA as text in N fragments (split inside the data)
  !bin DATA            DATA as one binary message
  !enc CODEC DATA      DATA encoded with a Python codec (utf-16 with its BOM, utf-32-le...),
                       as one binary message
  !gen FORM N KIND DATA  DATA encoded as FORM (plain|b64|pct|json), as KIND (text|bin), in N
                       fragments
  !ping DATA           a Ping frame carrying DATA
  !close DATA          a close frame (1000) whose reason is DATA
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

ENCODERS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "b64": lambda s: base64.b64encode(s.encode()).decode(),
    "pct": lambda s: quote(s, safe=""),
    "json": lambda s: json.dumps({"echo": s}),
}


@dataclass
class Received:
    path: str
    data: str | bytes


@dataclass
class WsOrigin:
    port: int
    tls: bool
    payloads: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    deflate: list[bool] = field(default_factory=list)  # per upgrade: was deflate negotiated
    controls: list[bytes] = field(default_factory=list)  # Ping payloads and close reasons
    _sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def received_bytes(self) -> bytes:
        return b"".join(
            r.data.encode() if isinstance(r.data, str) else r.data for r in self.received
        )


def start_ws_origin(cert: Path | None = None, key: Path | None = None) -> WsOrigin:
    ctx: ssl.SSLContext | None = None
    if cert is not None and key is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    sock = socket.create_server(("127.0.0.1", 0))
    origin = WsOrigin(sock.getsockname()[1], ctx is not None, _sock=sock)

    def accept_loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=_serve, args=(origin, conn, ctx), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return origin


def _serve(origin: WsOrigin, raw: socket.socket, ctx: ssl.SSLContext | None) -> None:
    raw.settimeout(30)
    try:
        sock = ctx.wrap_socket(raw, server_side=True) if ctx else raw
        _Session(origin, sock).run()
    except (OSError, ssl.SSLError):
        pass
    finally:
        raw.close()


class _Session:
    def __init__(self, origin: WsOrigin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.ws = WSConnection(ConnectionType.SERVER)
        self.path = ""
        self.buf: list[str | bytes] = []

    def send(self, event: Event) -> None:
        self.sock.sendall(self.ws.send(event))

    def run(self) -> None:
        while True:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, Request):
                    self.path = event.target
                    offered = any("permessage-deflate" in e for e in event.extensions)
                    self.origin.deflate.append(offered)
                    exts = [PerMessageDeflate()] if offered else []
                    self.send(AcceptConnection(extensions=exts))
                elif isinstance(event, Message):
                    self.buf.append(event.data)
                    if event.message_finished:
                        whole = (
                            "".join(self.buf)
                            if isinstance(event.data, str)
                            else b"".join(
                                self.buf  # type: ignore[arg-type]
                            )
                        )
                        self.buf = []
                        self.origin.received.append(Received(self.path, whole))
                        self.answer(whole)
                elif isinstance(event, Ping):
                    self.origin.controls.append(bytes(event.payload))
                    self.send(event.response())
                elif isinstance(event, CloseConnection):
                    self.origin.controls.append((event.reason or "").encode())
                    if self.ws.state is ConnectionState.REMOTE_CLOSING:  # not our own close
                        self.send(event.response())
                    return
            if not data:
                return

    def send_fragments(self, text: str, count: int, *, binary: bool) -> None:
        data: str | bytes = text.encode() if binary else text
        step = max(1, -(-len(data) // count))
        parts = [data[i : i + step] for i in range(0, len(data), step)] or [data]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(part, bytes):
                self.send(BytesMessage(part, message_finished=last))
            else:
                self.send(TextMessage(part, message_finished=last))

    def answer(self, data: str | bytes) -> None:
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        op, _, arg = text.partition(" ") if text.startswith("!") else ("", "", "")
        for name, value in self.origin.payloads.items():
            arg = arg.replace("$" + name, value)
        match op:
            case "!b64":
                self.send(TextMessage(base64.b64encode(arg.encode()).decode()))
            case "!pct":
                self.send(TextMessage(quote(arg, safe="")))
            case "!json":
                self.send(TextMessage(json.dumps({"echo": arg})))
            case "!frag":
                count, _, rest = arg.partition(" ")
                self.send_fragments(rest, int(count), binary=False)
            case "!bin":
                self.send(BytesMessage(arg.encode()))
            case "!enc":
                codec, _, rest = arg.partition(" ")
                self.send(BytesMessage(rest.encode(codec)))
            case "!txt":
                self.send(TextMessage(arg))
            case "!gen":
                form, count, kind, rest = arg.split(" ", 3)
                self.send_fragments(ENCODERS[form](rest), int(count), binary=kind == "bin")
            case "!ping":
                self.send(Ping(arg.encode()))
            case "!close":
                self.send(CloseConnection(1000, arg))
            case _:
                self.send(TextMessage(data) if isinstance(data, str) else BytesMessage(data))
