"""A plain HTTP origin that answers large bodies: ``GET /bytes/<n>`` returns n bytes.

``?chunked=1`` sends them chunked (no Content-Length). For memory-bound tests of downloads
(origin.py echoes requests and is owned elsewhere).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

BLOCK = b"y" * (1024 * 1024)


@dataclass
class BulkOrigin:
    port: int
    server: ThreadingHTTPServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            size = int(url.path.rsplit("/", 1)[1])
        except ValueError:
            size = 0
        chunked = parse_qs(url.query).get("chunked") == ["1"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            left = size
            while left > 0:
                part = BLOCK[: min(left, len(BLOCK))]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(part), part) if chunked else part)
                left -= len(part)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True  # the proxy gave up on this answer


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return  # the proxy aborting an answer it refused is expected here, not an error


def start_bulk_origin(cert: Path | None = None, key: Path | None = None) -> BulkOrigin:
    """Plain HTTP, or TLS (HTTP/1.1) with ``cert``/``key`` (a leaf of the tests' CA)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    if cert is not None and key is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return BulkOrigin(server.server_address[1], server)
