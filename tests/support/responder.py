"""Answers the test origins (HTTP/1.1 and HTTP/2) build from a spec, to echo a real secret.

The agent sends a placeholder in ``X-Secret``; the proxy swaps the real value in; the origin
puts that value back into the answer wherever and however the spec says:

    POST /api/respond  {"headers": [["X-Echo", "{secret|b64}"]], "body": "...{secret}...",
                        "codings": ["gzip", "gzip"], "mode": "chunked", "chunk": 7,
                        "ctype": "text/plain", "trailers": [["grpc-message", "{secret}"]]}
    POST /api/store?key=K   stores the request body (the real value, once swapped)
    GET  /api/read?key=K&mode=...&coding=...   returns it in the body and in X-Stored

``{secret|ENC}`` applies one of ``ENCODERS``. Codings are applied in the order listed, like a
server would; ``bogus`` is a coding nobody knows, ``corrupt`` damages the bytes.

Red-team shapes (tests/security/test_scrub_redteam.py): ``"reason": "{secret}"`` is the
HTTP/1 reason phrase; ``"te": ["gzip"]`` sends ``Transfer-Encoding: gzip, chunked``
(HTTP/1.1 origin); ``"container": "gzip-fname"`` hides the value in a compression container
(tests.support.containers) around a clean body; ``"charset": "utf-16-be"`` encodes the body
with that codec instead of UTF-8; ``"goaway": 15`` makes the HTTP/2 origin answer with a
GOAWAY whose debug data is the value from that byte offset.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import brotli  # type: ignore[import-untyped]
import zstandard

from tests.support.containers import CONTAINERS


def _u(text: str, upper: bool = False) -> str:
    # json.dumps writes a character outside the BMP as a surrogate pair
    out = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in text)
    return out.upper().replace("\\U", "\\u") if upper else out


def _mixed_u(text: str) -> str:
    """Every other character escaped, hex case alternating: the any-mix JSON case."""
    out = []
    for i, c in enumerate(text):
        if i % 2:
            esc = f"\\u{ord(c):04x}"
            out.append(esc.upper().replace("\\U", "\\u") if i % 4 == 1 else esc)
        else:
            out.append(json.dumps(c)[1:-1])
    return "".join(out)


def _wrap(b64: str, width: int, brk: str, offset: int = 0) -> str:
    lines = [b64[:offset]] if offset else []
    rest = b64[offset:]
    lines += [rest[i : i + width] for i in range(0, len(rest), width)]
    return brk.join(lines)


def _b64(text: str, lead: str = "") -> str:
    return base64.b64encode((lead + text).encode()).decode()


def _lower_pct(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


ENCODERS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "pct": lambda s: quote(s, safe=""),
    "pct_lower": lambda s: _lower_pct(quote(s, safe="")),
    "pct_plus_lower": lambda s: _lower_pct(quote_plus(s, safe="")),
    "json": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json_ascii": lambda s: json.dumps(s)[1:-1],
    "json_slash": lambda s: json.dumps(s, ensure_ascii=False)[1:-1].replace("/", "\\/"),
    "json_u": _u,
    "json_u_upper": lambda s: _u(s, upper=True),
    "json_u_mixed": _mixed_u,
    "json_go": lambda s: (
        json.dumps(s, ensure_ascii=False)[1:-1]
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    ),
    "b64": _b64,
    "b64url": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "b64_bearer": lambda s: _b64(s, "Bearer "),
    "b64_lead1": lambda s: _b64(s, "x"),
    "b64_lead2": lambda s: _b64(s, "xy"),
    "b64_json_slash": lambda s: _b64(s, "??>" * 5).replace("/", "\\/"),  # PHP-style JSON
    # the lead puts the value's base64 across a line break (24 characters before its end)
    "mime76_crlf": lambda s: _wrap(_b64(s, "m" * 39), 76, "\r\n"),
    "mime76_lf_offset": lambda s: _wrap(_b64(s, "o" * 62), 76, "\n", offset=31),
    "pem64_lf": lambda s: _wrap(_b64(s, "p" * 30), 64, "\n"),
    "mime76_json": lambda s: _wrap(_b64(s, "j" * 27), 60, "\\n"),
}


def header_text(header: str) -> str:
    """HTTP/1.1 servers read header bytes as latin-1; the value was sent as UTF-8."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return header


def render(template: str, secret: str) -> str:
    def one(m: re.Match[str]) -> str:
        return ENCODERS[m.group(1) or "plain"](secret)

    return re.sub(r"\{secret(?:\|(\w+))?\}", one, template)


def apply_codings(body: bytes, codings: list[str]) -> bytes:
    for name in codings:
        if name in ("gzip", "x-gzip"):
            body = gzip.compress(body)
        elif name == "deflate":
            body = zlib.compress(body)
        elif name == "deflate-raw":
            c = zlib.compressobj(wbits=-15)
            body = c.compress(body) + c.flush()
        elif name == "br":
            body = brotli.compress(body)
        elif name == "zstd":
            body = zstandard.ZstdCompressor().compress(body)
        elif name == "corrupt":
            body = body[:10] + bytes(b ^ 0x5A for b in body[10:40]) + body[40:]
        elif name == "bogus":
            body = bytes(reversed(body))
    return body


def coding_header(codings: list[str]) -> str:
    names = [{"deflate-raw": "deflate"}.get(c, c) for c in codings if c != "corrupt"]
    return ", ".join(names)


@dataclass
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)
    mode: str = "length"  # HTTP/1.1 framing: length | chunked
    reason: str | None = None  # HTTP/1.1 reason phrase (None: the standard one)
    te: list[str] = field(default_factory=list)  # HTTP/1.1 transfer-codings before chunked
    goaway: int | None = None  # HTTP/2: GOAWAY with the value from this offset as debug data
    secret: str = ""


class Responder:
    """The shared logic of both origins; ``answer`` returns None for paths it does not own."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        secret = header_text(headers.get("x-secret", ""))
        if url.path == "/api/respond":
            return self._respond(json.loads(body or b"{}"), secret)
        if url.path == "/api/store":
            with self._lock:
                self.stored[query.get("key", "k")] = body
            return Answer(201, [("Content-Type", "text/plain")], [b"stored"])
        if url.path == "/api/read":
            with self._lock:
                data = self.stored.get(query.get("key", "k"), b"")
            spec = {
                "headers": [["X-Stored", data.decode("utf-8", "replace")[:200]]],
                "body": data.decode("utf-8", "replace"),
                "codings": [c for c in query.get("coding", "").split(",") if c],
                "mode": query.get("mode", "length"),
                "ctype": query.get("ctype", "text/plain"),
            }
            return self._respond(spec, secret)
        return None

    def _respond(self, spec: dict[str, Any], secret: str) -> Answer:
        codings = list(spec.get("codings", []))
        body = render(spec.get("body", ""), secret).encode(spec.get("charset", "utf-8"))
        body = apply_codings(body, codings)
        headers = [(render(k, secret), render(v, secret)) for k, v in spec.get("headers", [])]
        headers.append(("Content-Type", spec.get("ctype", "application/octet-stream")))
        if spec.get("container"):
            name, build = CONTAINERS[spec["container"]]
            body = build(body, secret.encode())
            codings.append(name)
        if coding_header(codings):
            headers.append(("Content-Encoding", coding_header(codings)))
        te = list(spec.get("te", []))
        body = apply_codings(body, te)
        size = max(1, int(spec.get("chunk", 0)) or len(body) or 1)
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        trailers = [(k, render(v, secret)) for k, v in spec.get("trailers", [])]
        reason = render(spec["reason"], secret) if "reason" in spec else None
        return Answer(
            int(spec.get("status", 200)),
            headers,
            chunks,
            trailers,
            "chunked" if te else spec.get("mode", "length"),
            reason,
            te,
            spec.get("goaway"),
            secret,
        )
