"""Token usage from OpenAI-compatible answers: a JSON body, or the chunks of an SSE stream.

Streams report usage in a final chunk when the request asks for it
(``stream_options.include_usage``); the gateway asks on the agent's behalf and reads it as the
chunks pass, without holding them back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import orjson


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    seen: bool = False

    def add(self, doc: object) -> None:
        if not isinstance(doc, dict):
            return
        if isinstance(doc.get("model"), str):
            self.model = doc["model"]
        usage = doc.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
            self.seen = True


def from_body(body: bytes) -> Usage:
    u = Usage()
    with contextlib.suppress(orjson.JSONDecodeError):
        u.add(orjson.loads(body))
    return u


class StreamUsage:
    """Feed SSE bytes as they pass; ``usage`` holds what the stream reported."""

    def __init__(self) -> None:
        self.usage = Usage()
        self._buf = b""

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while b"\n\n" in self._buf:
            event, self._buf = self._buf.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    data = line[5:].strip()
                    if data and data != b"[DONE]":
                        try:
                            self.usage.add(orjson.loads(data))
                        except orjson.JSONDecodeError:
                            continue
        if len(self._buf) > 1 << 20:  # a malformed stream must not grow this buffer forever
            self._buf = self._buf[-(1 << 16) :]
