"""Compressed containers that carry bytes where decoders skip them (red-team finding L6).

Each builder returns a valid stream whose *decoded* content is ``body`` while ``hidden`` sits
in plain bytes inside the container: gzip header fields (FNAME, FCOMMENT, FEXTRA), a zstd
skippable frame, a brotli metadata meta-block. A proxy that only scrubs the decoded body and
forwards the coded bytes hands ``hidden`` to the agent untouched.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import zstandard

_FEXTRA, _FNAME, _FCOMMENT = 0x04, 0x08, 0x10


def _gzip(body: bytes, flags: int, fields: bytes) -> bytes:
    """One gzip member (RFC 1952) with the optional header fields already laid out."""
    head = b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00\x00\xff"
    c = zlib.compressobj(wbits=-15)
    data = c.compress(body) + c.flush()
    tail = struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)
    return head + fields + data + tail


def gzip_fname(body: bytes, hidden: bytes) -> bytes:
    return _gzip(body, _FNAME, hidden + b"\x00")


def gzip_fcomment(body: bytes, hidden: bytes) -> bytes:
    return _gzip(body, _FCOMMENT, b"token " + hidden + b"\x00")


def gzip_fextra(body: bytes, hidden: bytes) -> bytes:
    sub = b"TK" + struct.pack("<H", len(hidden)) + hidden
    return _gzip(body, _FEXTRA, struct.pack("<H", len(sub)) + sub)


def zstd_skippable(body: bytes, hidden: bytes) -> bytes:
    """The skippable frame follows the data frame, so decoders return ``body`` whole."""
    skip = struct.pack("<II", 0x184D2A50, len(hidden)) + hidden
    return zstandard.ZstdCompressor().compress(body) + skip


class _Bits:
    """Brotli packs its header fields least significant bit first."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, value: int, width: int) -> None:
        self.acc |= value << self.n
        self.n += width
        while self.n >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.n -= 8

    def align(self) -> None:
        if self.n:
            self.put(0, 8 - self.n)

    def raw(self, data: bytes) -> None:
        self.align()
        self.out += data


def br_metadata(body: bytes, hidden: bytes) -> bytes:
    """WBITS, a metadata meta-block holding ``hidden``, ``body`` stored uncompressed, the end."""
    assert 0 < len(hidden) <= 256 and 0 < len(body) <= 65536
    w = _Bits()
    w.put(0, 1)  # WBITS = 16
    w.put(0, 1)  # ISLAST = 0
    w.put(3, 2)  # MNIBBLES = 0: a metadata block
    w.put(0, 1)  # reserved
    w.put(1, 2)  # MSKIPBYTES = 1
    w.put(len(hidden) - 1, 8)
    w.raw(hidden)
    w.put(0, 1)  # ISLAST = 0
    w.put(0, 2)  # MNIBBLES = 4
    w.put(len(body) - 1, 16)
    w.put(1, 1)  # ISUNCOMPRESSED
    w.raw(body)
    w.put(1, 1)  # ISLAST
    w.put(1, 1)  # ISLASTEMPTY
    w.align()
    return bytes(w.out)


# name -> (Content-Encoding it claims, builder)
CONTAINERS: dict[str, tuple[str, Callable[[bytes, bytes], bytes]]] = {
    "gzip-fname": ("gzip", gzip_fname),
    "gzip-fcomment": ("gzip", gzip_fcomment),
    "gzip-fextra": ("gzip", gzip_fextra),
    "zstd-skippable": ("zstd", zstd_skippable),
    "br-metadata": ("br", br_metadata),
}
