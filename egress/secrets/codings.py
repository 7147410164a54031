"""Content-codings undone before an answer is scrubbed: a client decodes them, so must we.

``Content-Encoding: br, gzip`` lists the codings in the order the sender applied them, so
decoding goes right to left, one streaming decoder per layer (``gzip, gzip`` included). Known:
identity, gzip (x-gzip; every member of a multi-member stream), deflate (zlib-wrapped or raw,
as clients accept both), br, zstd. Anything else, or bytes a decoder rejects, raises
``Undecodable``: the caller refuses the answer rather than pass on what it cannot check.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

import brotli
import zstandard

# A decoded body larger than this is refused as undecodable (a small compressed answer can
# expand to gigabytes; the proxy never holds that in memory).
MAX_DECODED_BYTES = 256 * 1024 * 1024


class Undecodable(Exception):
    """A content-coding the proxy cannot decode, or data its decoder rejects."""


class _Layer(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


class _Zlib:
    """gzip (``wbits=31``) or deflate; a new gzip member may follow the end of the last one."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self._d: zlib._Decompress | None = zlib.decompressobj(31) if gzip else None
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        if self._d is None:  # deflate: zlib-wrapped or raw, told by the first two bytes
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            b0, b1 = data[0], data[1]
            wrapped = b0 & 0x0F == 8 and (b0 << 8 | b1) % 31 == 0
            self._d = zlib.decompressobj(15 if wrapped else -15)
        out = []
        try:
            while data:
                if self._d.eof:
                    if not self.gzip:
                        raise Undecodable("data after the end of a deflate stream")
                    self._d = zlib.decompressobj(31)  # the next gzip member
                out.append(self._d.decompress(data))
                data = self._d.unused_data if self._d.eof else b""
        except zlib.error as e:
            raise Undecodable(f"corrupt {'gzip' if self.gzip else 'deflate'} data") from e
        return b"".join(out)

    def finish(self) -> bytes:
        if self._head:
            raise Undecodable("truncated deflate data")
        if self._d is None:
            return b""
        try:
            tail = self._d.flush()
        except zlib.error as e:
            raise Undecodable("corrupt compressed data") from e
        if not self._d.eof:
            raise Undecodable("truncated compressed data")
        return tail


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        try:
            out: bytes = self._d.process(data)
            return out
        except brotli.error as e:
            raise Undecodable("corrupt br data") from e

    def finish(self) -> bytes:
        if not self._d.is_finished():
            raise Undecodable("truncated br data")
        return b""


class _Zstd:
    def __init__(self) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)

    def feed(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data)
        except zstandard.ZstdError as e:
            raise Undecodable("corrupt zstd data") from e

    def finish(self) -> bytes:
        return b""


_LAYERS: dict[str, Callable[[], _Layer]] = {
    "identity": _Identity,
    "gzip": lambda: _Zlib(gzip=True),
    "x-gzip": lambda: _Zlib(gzip=True),
    "deflate": lambda: _Zlib(gzip=False),
    "br": _Brotli,
    "zstd": _Zstd,
}


def codings(header_values: list[str]) -> list[str]:
    """The codings of all ``Content-Encoding`` lines, in the order they were applied."""
    return [c.strip().lower() for v in header_values for c in v.split(",") if c.strip()]


def is_identity(names: list[str]) -> bool:
    return all(n == "identity" for n in names)


class Decoder:
    """Undoes a stack of codings, chunk by chunk. Raises ``Undecodable``."""

    def __init__(self, names: list[str]) -> None:
        unknown = [n for n in names if n not in _LAYERS]
        if unknown:
            raise Undecodable(f"unknown content-coding {unknown[0][:40]!r}")
        # the last coding applied is the first undone
        self._layers = [_LAYERS[n]() for n in reversed(names) if n != "identity"]
        self._total = 0
        self._fed = False

    def _count(self, out: bytes) -> bytes:
        self._total += len(out)
        if self._total > MAX_DECODED_BYTES:
            raise Undecodable("decoded body larger than the proxy checks")
        return out

    def feed(self, data: bytes) -> bytes:
        self._fed = self._fed or bool(data)
        for layer in self._layers:
            data = layer.feed(data)
        return self._count(data)

    def finish(self) -> bytes:
        """The rest, once the body ended; raises if a layer was left incomplete."""
        if not self._fed:
            return b""  # no body at all (HEAD, 204, 304): nothing was encoded
        data = b""
        for layer in self._layers:
            data = layer.feed(data) + layer.finish()
        return self._count(data)


def decode_all(names: list[str], body: bytes) -> bytes:
    decoder = Decoder(names)
    return decoder.feed(body) + decoder.finish()
