"""A plain ws:// origin for volume tests: it never parses what it receives, so it keeps up with
hundreds of MB of client messages (the Python echo origins would be the bottleneck).

- ``/sink``: after the upgrade, everything the client sends is read and discarded (counted);
- ``/blast/<count>/<size>``: after the upgrade, ``count`` unmasked binary messages of ``size``
  bytes are sent as fast as the socket takes them, then the origin keeps reading;
- ``/mirror/<size>``: like an echo of ``size``-byte messages, without parsing: one binary
  message of ``size`` bytes back for each ``size + 8`` bytes (a masked frame) received.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from dataclasses import dataclass, field

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class BulkOrigin:
    port: int
    sock: socket.socket
    received: list[int] = field(default_factory=list)  # bytes read after each upgrade, live

    def close(self) -> None:
        self.sock.close()


def frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One unmasked (server) frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def _upgrade(conn: socket.socket) -> str | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    key = ""
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    digest = hashlib.sha1(key.encode() + WS_GUID).digest()  # noqa: S324 (RFC 6455)
    accept = base64.b64encode(digest).decode()
    conn.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    return head[0].split(" ")[1]


def _serve(conn: socket.socket, origin: BulkOrigin) -> None:
    with conn:
        path = _upgrade(conn)
        if path is None:
            return
        slot = len(origin.received)
        origin.received.append(0)
        if path.startswith("/blast/"):
            count, size = (int(x) for x in path.split("/")[2:4])
            one = frame(b"\x5a" * size)
            batch = max(1, (256 * 1024) // len(one))
            try:
                for start in range(0, count, batch):
                    conn.sendall(one * min(batch, count - start))
            except OSError:
                return
        mirror = int(path.split("/")[2]) if path.startswith("/mirror/") else 0
        reply = frame(b"\x5a" * mirror) if mirror else b""
        owed = 0
        while True:
            try:
                chunk = conn.recv(1 << 20)
                origin.received[slot] += len(chunk)
                if not chunk:
                    return
                if mirror:  # one message back per message-sized piece received
                    owed += len(chunk)
                    conn.sendall(reply * (owed // (mirror + 8)))
                    owed %= mirror + 8
            except OSError:
                return


def start_bulk_origin() -> BulkOrigin:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    origin = BulkOrigin(sock.getsockname()[1], sock)

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, origin), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return origin
