"""A TLS WebSocket origin that keeps the socket open: it echoes every message until closed.

(The /ws endpoint of origin.py answers one message and hangs up; revocation and idle tests
need a WebSocket that lives until someone else ends it.) Also a tiny client side: the
upgrade request and masked client frames, over any socket.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class WsOrigin:
    port: int
    sock: socket.socket
    closed_by_peer: list[float] = field(default_factory=list)  # how upstream sockets ended

    def close(self) -> None:
        self.sock.close()


def _read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    head = _exact(sock, 2)
    if head is None:
        return None
    length = head[1] & 0x7F
    if length == 126:
        ext = _exact(sock, 2)
        length = int.from_bytes(ext or b"\0\0", "big")
    elif length == 127:
        ext = _exact(sock, 8)
        length = int.from_bytes(ext or bytes(8), "big")
    mask = _exact(sock, 4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = _exact(sock, length) if length else b""
    if mask is None or payload is None:
        return None
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def server_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def upgrade_request(path: str, host: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _serve_one(conn: socket.socket) -> None:
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        digest = hashlib.sha1((key + WS_GUID).encode()).digest()  # noqa: S324 (RFC 6455)
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
        )
        while True:
            frame = _read_frame(conn)
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 8:  # close: answer it and end
                conn.sendall(server_frame(8, payload[:2]))
                return
            if opcode == 9:  # ping
                conn.sendall(server_frame(10, payload))
                continue
            conn.sendall(server_frame(1, b"echo:" + payload))


def start_ws_origin(cert: Path, key: Path) -> WsOrigin:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    origin = WsOrigin(listener.getsockname()[1], listener)

    def accept_forever() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                conn = ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_forever, daemon=True).start()
    return origin


def read_server_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    """One frame from the proxy (unmasked, as a server sends)."""
    return _read_frame(sock)
