"""Misbehaving policy servers on real sockets, for fail-closed tests.

These stand in for an OPA server that is broken in a specific way (5xx, garbage, wrong types,
undefined, too slow). The real OPA server is exercised separately; a broken one cannot be
ordered from it on demand, so these small HTTP servers play that part over the wire.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = {
    "http500": (500, b'{"code":"internal_error"}', 0.0),
    "garbage": (200, b"<html>not json", 0.0),
    "wrong_types": (200, b'{"result":{"allow":"true","reason":"allowed","secrets":[]}}', 0.0),
    "undefined": (200, b"{}", 0.0),
    "slow": (200, b'{"result":{"allow":true,"reason":"allowed","secrets":[]}}', 2.0),
}


def start_policy_stub(behaviour: str) -> tuple[ThreadingHTTPServer, int]:
    status, body, delay = BEHAVIOURS[behaviour]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
