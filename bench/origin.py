"""A TLS origin of the benchmarks' own on 127.0.0.1: every request is answered with a JSON
echo of its method, path and headers (the shape the tests' origin answers /api/ with), so the
benchmarks need nothing from tests/."""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _echo(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _echo


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the soak opens hundreds of upstream connections at once


@dataclass
class Origin:
    port: int
    server: ThreadingHTTPServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_origin(cert: Path, key: Path) -> Origin:
    """Serve HTTPS with ``cert``/``key`` on a free loopback port, in a daemon thread."""
    server = _Server(("127.0.0.1", 0), _Echo)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Origin(server.server_address[1], server)
