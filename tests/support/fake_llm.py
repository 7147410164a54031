"""A real OpenAI-compatible upstream for the gateway tests (HTTP on 127.0.0.1).

/v1/chat/completions   JSON answer with usage, or an SSE stream (one chunk per word, 0.15 s
                       apart, and a final usage chunk when stream_options.include_usage is set)
/v1/embeddings         JSON with usage
/v1/models             model list
/v1/echo-key           returns the credential it received (plain and base64) to test scrubbing
/v1/echo-key-shaped/S  the credential in shape S (SHAPES: coded, in a charset that hides ASCII)
/v1/fail               500 with an OpenAI-style error body
Every request is recorded (headers and JSON body).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeLLM:
    port: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def _sse(text: str) -> str:
    return f'data: {{"choices": [{{"delta": {{"content": "{text}"}}}}]}}\n\ndata: [DONE]\n\n'


# /v1/echo-key-shaped/<shape>: (content type, content-coding, body) built from the credential
SHAPES = {
    "sse-gzip": lambda a: ("text/event-stream", "gzip", gzip.compress(_sse(a).encode())),
    "sse-deflate": lambda a: ("text/event-stream", "deflate", zlib.compress(_sse(a).encode())),
    "json-gzip": lambda a: (
        "application/json",
        "gzip",
        gzip.compress(json.dumps({"k": a}).encode()),
    ),
    "json-utf16": lambda a: (
        "application/json; charset=utf-16",
        "",
        json.dumps({"k": a}).encode("utf-16"),
    ),
    "json-utf16le-sniffed": lambda a: (
        "application/json",
        "",
        json.dumps({"k": a}).encode("utf-16-le"),
    ),
    "text-utf32": lambda a: ("text/plain; charset=utf-32", "", a.encode("utf-32")),
    "ascii-labelled-utf16": lambda a: ("text/plain; charset=utf-16", "", f"k={a}\n".encode()),
    "sse-utf16": lambda a: ("text/event-stream; charset=utf-16", "", _sse(a).encode("utf-16")),
    "sse-ascii-labelled-utf32": lambda a: (
        "text/event-stream; charset=utf-32",
        "",
        _sse(a).encode(),
    ),
}


def start_fake_llm() -> FakeLLM:
    llm = FakeLLM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _json(self, status: int, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _shaped(self, shape: str, auth: str) -> None:
            """The credential it received, in a shape a scrubber of raw bytes would miss."""
            ctype, coding, body = SHAPES[shape](auth)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if coding:
                self.send_header("Content-Encoding", coding)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            doc = json.loads(raw) if raw else {}
            llm.seen.append(
                {
                    "path": self.path,
                    "method": self.command,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": doc,
                }
            )
            if self.path.startswith("/v1/models"):
                return self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini"}]})
            if self.path.startswith("/v1/fail"):
                return self._json(
                    500, {"error": {"message": "upstream exploded", "type": "server_error"}}
                )
            if self.path.startswith("/v1/echo-key-shaped/"):
                return self._shaped(
                    self.path.rsplit("/", 1)[1], self.headers.get("authorization", "")
                )
            if self.path.startswith("/v1/echo-key"):
                auth = self.headers.get("authorization", "")
                return self._json(
                    200,
                    {
                        "you_sent": auth,
                        "b64": base64.b64encode(auth.encode()).decode(),
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    },
                )
            if self.path.startswith("/v1/embeddings"):
                return self._json(
                    200,
                    {
                        "data": [{"embedding": [0.1, 0.2]}],
                        "model": doc.get("model"),
                        "usage": {"prompt_tokens": 8, "completion_tokens": 0},
                    },
                )
            words = ["Hello", " from", " the", " fake", " model"]
            if not doc.get("stream"):
                return self._json(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": doc.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "".join(words)},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": 12,
                            "completion_tokens": len(words),
                            "total_tokens": 12 + len(words),
                        },
                    },
                )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for w in words:
                piece = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "model": doc.get("model"),
                    "choices": [{"index": 0, "delta": {"content": w}}],
                }
                chunk(b"data: " + json.dumps(piece).encode() + b"\n\n")
                time.sleep(0.15)
            if (doc.get("stream_options") or {}).get("include_usage"):
                final = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "model": doc.get("model"),
                    "choices": [],
                    "usage": {"prompt_tokens": 20, "completion_tokens": len(words)},
                }
                chunk(b"data: " + json.dumps(final).encode() + b"\n\n")
            chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    llm.port = server.server_address[1]
    llm.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return llm
