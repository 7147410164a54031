"""Every way a client could read an answer, to prove a secret is in none of them.

Independent of the proxy's own code: content-codings undone with the codec libraries (every
layer, right to left), then percent-decoding (``+`` as space or not), JSON decoding (parsed
strings, and any ``"..."`` token on its own), and base64 of every run of base64 characters
after removing whitespace and JSON-escaped line breaks, at every offset, in both alphabets,
also on the results of the other decodings.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import re
import zlib
from urllib.parse import unquote_to_bytes

import brotli
import zstandard

from tests.support.wire import Got

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_\-]{8,}")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _undo(body: bytes, codings: list[str]) -> bytes:
    for name in reversed(codings):
        if name in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        elif name == "deflate":
            try:
                body = zlib.decompress(body)
            except zlib.error:
                body = zlib.decompress(body, -15)
        elif name == "br":
            body = brotli.decompress(body)
        elif name == "zstd":
            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        elif name != "identity":
            raise ValueError(name)
    return body


def decoded_body(got: Got) -> bytes:
    codings = [
        c.strip().lower()
        for k, v in got.headers
        if k.lower() == b"content-encoding"
        for c in v.decode().split(",")
        if c.strip()
    ]
    try:
        return _undo(got.body, codings)
    except (ValueError, OSError, EOFError, zlib.error, brotli.error, zstandard.ZstdError):
        return got.body


def _json_views(blob: bytes) -> list[bytes]:
    out: list[bytes] = []
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        out.append(json.dumps(json.loads(blob), ensure_ascii=False).encode())
    for token in _JSON_STRING.findall(blob):
        try:
            out.append(json.loads(token).encode("utf-8", "surrogatepass"))
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def _b64_views(blob: bytes) -> list[bytes]:
    flat = re.sub(rb"\s+|\\r|\\n", b"", blob).replace(b"\\/", b"/")
    out: list[bytes] = []
    for run in _B64_RUN.findall(flat):
        std = run.replace(b"-", b"+").replace(b"_", b"/")
        for start in range(4):
            piece = std[start:]
            if len(piece) % 4 == 1:
                piece = piece[:-1]  # a lone trailing character carries no whole byte
            try:
                out.append(base64.b64decode(piece + b"=" * (-len(piece) % 4)))
            except (binascii.Error, ValueError):
                continue
    return out


def views(got: Got) -> list[bytes]:
    """Every byte string a client may derive from this answer."""
    head = b"\n".join([got.reason] + [k + b": " + v for k, v in got.headers + got.trailers])
    firsts = [head, got.body, decoded_body(got)]
    level1: list[bytes] = []
    for blob in firsts:
        level1 += [blob, unquote_to_bytes(blob), unquote_to_bytes(blob.replace(b"+", b" "))]
        level1 += _json_views(blob)
    out = list(level1)
    for blob in level1:
        out += _b64_views(blob)
        out += [unquote_to_bytes(x) for x in _json_views(blob)]
    return out


def leaks(got: Got, secret: str) -> list[bytes]:
    """The views holding the secret (empty: the agent cannot read it)."""
    needles = {secret.encode()}
    with contextlib.suppress(UnicodeEncodeError):
        needles.add(secret.encode("latin-1"))  # how HTTP/1 header values are often written
    return [v[:200] for v in views(got) if any(n in v for n in needles)]
