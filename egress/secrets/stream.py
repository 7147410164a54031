"""Scrubbing a body that arrives in chunks: a value split across two chunks is still caught,
and what is held back to see the rest never depends on the secrets themselves."""

from __future__ import annotations

from egress.secrets.scrub import B64_ALPHABET, ScrubSet, scrub

# The tail a stream scrubber holds back never depends on the secrets' bytes: if it did, an agent
# streaming its own text through an honest echo could read "was my tail held?" as "is this a
# prefix of a secret?" and recover any value a character at a time (red-team L13). What is
# held is decided by the data alone: everything after the last line break (no form of a value
# holds a raw line break, except wrapped base64, whose block in progress is held whole), and at
# most HOLD_BYTES (at least the longest form) even without a line break.
HOLD_BYTES = 4096
_B64_BLOCK = B64_ALPHABET + b"\r\n\\"


class StreamScrubber:
    """Scrubs a body that arrives in chunks: ``feed`` each chunk, then ``feed(b"")``."""

    def __init__(self, pairs: ScrubSet) -> None:
        self.pairs = pairs
        self._held = b""
        self._hold_max = max(
            HOLD_BYTES, pairs.longest_literal, pairs.longest_mixed, pairs.longest_wrapped
        )

    def _holdback(self, data: bytes) -> int:
        """How many bytes at the end of (already scrubbed) ``data`` to keep for later."""
        cut = data.rfind(b"\n") + 1  # a line ends here: no form spans it
        head = data[:cut]
        # wrapped base64 in progress (lines of base64, not closed by a blank line): hold it
        run = len(head) - len(head.rstrip(_B64_BLOCK))
        block = head[cut - run :].lstrip(b"\r\n\\")
        if block.strip(b"\r\n\\") and not block.endswith((b"\n\n", b"\n\r\n")):
            cut -= len(block)
        # a complete form is at most _hold_max long and was scrubbed already: past that much,
        # nothing that still could become one is released
        cut = max(cut, len(data) - self._hold_max)
        return len(data) - cut

    def feed(self, chunk: bytes) -> bytes:
        """Scrubbed bytes that are safe to send now; ``b""`` at end of stream flushes all."""
        data = scrub(self._held + chunk, self.pairs)
        if not chunk:
            self._held = b""
            return data
        keep = self._holdback(data)
        self._held = data[len(data) - keep :] if keep else b""
        return data[: len(data) - keep] if keep else data
