"""Scrubbing: real secret values never reach the agent, even when an upstream echoes them.

Every encoded form a value commonly takes in a response (plain, percent-encoded, base64,
JSON-escaped) is replaced by the same form of the placeholder. Streamed bodies are scrubbed
chunk by chunk; only the tail that could be the start of a secret form is held back, so a
server-sent event ending in a blank line is never delayed.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import orjson


def _b64_fragments(raw: bytes) -> list[bytes]:
    """Base64 of ``raw`` as it appears inside a longer encoded blob, at each of the three byte
    alignments (``Basic base64(user:secret)``, ``base64("Bearer " + secret)``...): the
    characters that depend only on ``raw``, without the edge groups shared with its neighbours.
    """
    out: list[bytes] = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for lead in range(3):
            enc = encode(b"\0" * lead + raw)
            start = 4 if lead else 0
            end = len(enc) if (lead + len(raw)) % 3 == 0 else len(enc) - 4
            out.append(enc[start:end] if end - start >= 8 else b"")
    return out


def encoded_forms(text: str) -> list[bytes]:
    """The forms of ``text`` in a fixed order (pairs up a value with its placeholder)."""
    raw = text.encode()
    return [
        raw,
        quote(text, safe="").encode(),
        quote_plus(text, safe="").encode(),
        orjson.dumps(text)[1:-1],
        orjson.dumps(text)[1:-1].replace(b"/", b"\\/"),  # encoders that escape '/'
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        *_b64_fragments(raw),
    ]


def scrub_pairs(secrets: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return list(_scrub_pairs(tuple(secrets)))


@functools.lru_cache(maxsize=4096)
def _scrub_pairs(secrets: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    """(real form, replacement form) for every form of every (value, replacement) pair.

    When two encodings of a value coincide (a value with only unreserved characters looks the
    same percent-encoded), the plainer pairing wins: forms are listed plain first.
    """
    chosen: dict[bytes, bytes] = {}
    for value, placeholder in secrets:
        for real, fake in zip(encoded_forms(value), encoded_forms(placeholder), strict=True):
            if real and fake and real not in chosen:
                chosen[real] = fake
    return tuple(sorted(chosen.items(), key=lambda p: len(p[0]), reverse=True))


def scrub(data: bytes, pairs: list[tuple[bytes, bytes]]) -> bytes:
    for real, fake in pairs:
        if real in data:
            data = data.replace(real, fake)
    return data


class StreamScrubber:
    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs = pairs
        self._held = b""

    def _holdback(self, data: bytes) -> int:
        longest = 0
        for real, _ in self.pairs:
            for k in range(min(len(real) - 1, len(data)), longest, -1):
                if data.endswith(real[:k]):
                    longest = k
                    break
        return longest

    def feed(self, chunk: bytes) -> bytes:
        """Scrubbed bytes that are safe to send now; ``b""`` at end of stream flushes all."""
        data = scrub(self._held + chunk, self.pairs)
        if not chunk:
            self._held = b""
            return data
        keep = self._holdback(data)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data
