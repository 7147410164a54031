"""A TLS origin on 127.0.0.1 that answers with scripted raw bytes, for upstream behaviour the
standard library's server cannot produce: HTTP/1 trailers, ``1xx`` informational answers before
the final one, odd framing. ALPN offers only ``http/1.1``.

``scripts`` maps a request path (without query) to the exact bytes sent back; ``{echo}`` in a
script is replaced by the request's ``Authorization`` header value, so an origin can echo a
swapped secret. Every request head received is recorded in ``seen``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RawOrigin:
    port: int
    scripts: dict[str, bytes]
    seen: list[bytes] = field(default_factory=list)
    _sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()


def _read_head(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data.partition(b"\r\n\r\n")[0]


def _serve(origin: RawOrigin, conn: ssl.SSLSocket) -> None:
    with conn:
        conn.settimeout(10)
        while True:
            try:
                head = _read_head(conn)
            except OSError:
                return
            if not head:
                return
            origin.seen.append(head)
            lines = head.split(b"\r\n")
            parts = lines[0].split(b" ")
            # not a request line (an upload's body read as a head): recorded, answered 404
            path = parts[1].split(b"?")[0].decode("latin-1") if len(parts) > 1 else ""
            auth = b""
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"authorization":
                    auth = value.strip()
            script = origin.scripts.get(
                path, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
            )
            try:
                conn.sendall(script.replace(b"{echo}", auth))
            except OSError:
                return


def start_raw_origin(cert: Path, key: Path, scripts: dict[str, bytes]) -> RawOrigin:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.create_server(("127.0.0.1", 0))
    origin = RawOrigin(listener.getsockname()[1], scripts, _sock=listener)

    def accept() -> None:
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
            threading.Thread(target=_serve, args=(origin, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return origin
