"""A real HTTP/2 origin (TLS, ALPN h2) on 127.0.0.1, written with the ``h2`` library.

It answers through ``tests.support.responder`` (so it echoes a swapped secret the same ways
as the HTTP/1.1 origin), sends each body chunk as its own DATA frame and can end a stream with
trailers (``grpc-message``...), which HTTP/1.1 origins rarely do. A ``goaway`` spec closes
the connection instead, with the swapped value as GOAWAY debug data (finding L5).
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from tests.support.responder import Answer, Responder


@dataclass
class H2Origin:
    port: int
    responder: Responder = field(default_factory=Responder)
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()


def start_h2_origin(cert: Path, key: Path) -> H2Origin:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    sock = socket.create_server(("127.0.0.1", 0))
    origin = H2Origin(port=sock.getsockname()[1], _sock=sock)

    def accept() -> None:
        while not origin._stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(origin, ctx, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return origin


def _serve(origin: H2Origin, ctx: ssl.SSLContext, raw: socket.socket) -> None:
    try:
        sock = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        return
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    requests: dict[int, tuple[dict[str, str], bytearray]] = {}
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                    requests[event.stream_id] = (headers, bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    requests[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = requests.pop(event.stream_id)
                    if not _reply(conn, event.stream_id, headers, bytes(body), origin.responder):
                        sock.sendall(conn.data_to_send())
                        return  # a GOAWAY went out: this connection is over
            sock.sendall(conn.data_to_send())
    except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
        return
    finally:
        sock.close()


def _reply(
    conn: h2.connection.H2Connection,
    stream_id: int,
    headers: dict[str, str],
    body: bytes,
    responder: Responder,
) -> bool:
    """Queue the answer to one stream; False: the connection was closed with a GOAWAY."""
    answer = responder.answer(
        headers.get(":method", "GET"), headers.get(":path", "/"), headers, body
    )
    if answer is None:
        answer = Answer(404, [("content-type", "text/plain")], [b"not here"])
    if answer.goaway is not None:
        debug = answer.secret.encode()[answer.goaway :]
        conn.close_connection(error_code=2, additional_data=debug)  # INTERNAL_ERROR
        return False
    fields = [(":status", str(answer.status))]
    fields += [(k.lower(), v) for k, v in answer.headers]
    chunks = [c for c in answer.chunks if c]
    conn.send_headers(stream_id, fields, end_stream=not chunks and not answer.trailers)
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1 and not answer.trailers
        conn.send_data(stream_id, chunk, end_stream=last)
    if answer.trailers:
        conn.send_headers(stream_id, [(k.lower(), v) for k, v in answer.trailers], end_stream=True)
    return True
