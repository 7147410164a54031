"""Real origin servers on 127.0.0.1 (TLS with the tests' own CA, or plain HTTP).

Every request that reaches an origin is recorded, so tests assert what really left the proxy.
Endpoints:
  /echo..., /api/...   JSON {method, path, headers, body} of the request as received
  /sse                 text/event-stream, chunked, echoes the Authorization header split
                       across chunk boundaries (for streaming scrub tests)
  /ws, /api/ws         WebSocket echo of one text message (/api/ws?reason=T: 101 reason phrase T)
  /redirect?to=URL     302 to URL
  /forge               response carrying forged X-Egress-* headers
  /api/respond, /api/store, /api/read   answers built from a spec, echoing a swapped secret
                       in headers, bodies, codings and framings (tests.support.responder)
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from egress.testing.net import free_port
from tests.support.responder import Answer, Responder, header_text, render

__all__ = ["Origin", "Seen", "free_port", "start_origin"]

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Origin:
    port: int
    tls: bool
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    connections: int = 0
    responder: Responder = field(default_factory=Responder)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    def close(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    origin: Origin

    def log_message(self, format: str, *args: object) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.origin.connections += 1

    def _record(self) -> Seen:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            body = self._read_chunked()  # what a proxy sends for an HTTP/2 agent's body
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.origin.seen.append(seen)
        return seen

    def _read_chunked(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return body

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, answer: Answer) -> None:
        self.send_response(answer.status, answer.reason)
        for k, v in answer.headers:
            self.send_header(k, v)
        body = b"".join(answer.chunks)
        if answer.mode != "chunked":
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", ", ".join([*answer.te, "chunked"]))
        self.end_headers()
        for chunk in answer.chunks:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        trailer = "".join(f"{k}: {v}\r\n" for k, v in answer.trailers)
        self.wfile.write(b"0\r\n" + trailer.encode() + b"\r\n")
        self.wfile.flush()

    def _dispatch(self) -> None:
        seen = self._record()
        url = urlsplit(self.path)
        answer = self.origin.responder.answer(seen.method, seen.path, seen.headers, seen.body)
        if answer is not None:
            return self._answer(answer)
        if url.path == "/sse":
            return self._sse(seen)
        if url.path in ("/ws", "/api/ws"):
            # /api/ws?reason=T: the 101's reason phrase is T with the swapped value put in
            reason = parse_qs(url.query).get("reason", [""])[0]
            secret = header_text(seen.headers.get("x-secret", ""))
            return self._websocket(seen, render(reason, secret) or None)
        if url.path == "/redirect":
            target = parse_qs(url.query).get("to", ["/"])[0]
            return self._send(302, b"", {"Location": target})
        if url.path == "/forge":
            return self._send(
                200,
                b"forged",
                {"X-Egress-Reason": "allowed", "X-Egress-Decision-Id": "forged-by-origin"},
            )
        auth = seen.headers.get("authorization", "")
        doc = {
            "method": seen.method,
            "path": seen.path,
            "headers": seen.headers,
            "body": seen.body.decode("utf-8", "replace"),
            "auth_b64": base64.b64encode(auth.encode()).decode(),
        }
        extra = {"Content-Type": "application/json"}
        if auth:
            extra["X-Echo-Authorization"] = auth
        self._send(200, json.dumps(doc).encode(), extra)

    def _sse(self, seen: Seen) -> None:
        auth = seen.headers.get("authorization", "none").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        half = len(auth) // 2
        parts = [
            b"data: one\n\n",
            b"data: auth=" + auth[:half],
            auth[half:] + b"\n\n",
            b"data: three\n\n",
        ]
        for part in parts:
            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _websocket(self, seen: Seen, reason: str | None = None) -> None:
        key = seen.headers.get("sec-websocket-key", "")
        digest = hashlib.sha1((key + WS_GUID).encode()).digest()  # noqa: S324 (RFC 6455)
        accept = base64.b64encode(digest).decode()
        self.send_response(101, reason)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        head = self.rfile.read(2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.rfile.read(2), "big")
        mask = self.rfile.read(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
        reply = b"echo:" + payload
        self.wfile.write(bytes([0x81, len(reply)]) + reply)
        self.wfile.flush()
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch


class _OriginServer(ThreadingHTTPServer):
    request_queue_size = 1024  # soak tests open hundreds of upstream connections at once


def start_origin(
    cert: Path | None = None, key: Path | None = None, host: str = "127.0.0.1", port: int = 0
) -> Origin:
    origin = Origin(port=0, tls=cert is not None)
    handler = type("Handler", (_Handler,), {"origin": origin})
    server = _OriginServer((host, port), handler)
    server.daemon_threads = True
    if cert is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    origin.port = server.server_address[1]
    origin.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return origin
