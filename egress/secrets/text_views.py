"""A body in a charset that hides ASCII (UTF-16, UTF-32, UTF-7, EBCDIC...) has two views a
client may read: its bytes as they came (a client that ignores or overrides the charset) and its
text in the charset. Both are scrubbed, by the proxy and the gateway alike (``charsets`` tells
which charset applies)."""

from __future__ import annotations

import codecs

from egress.secrets import charsets
from egress.secrets.scrub import WITHHELD, ScrubSet, scrub
from egress.secrets.stream import StreamScrubber


def scrub_views(body: bytes, charset: str, s: ScrubSet) -> bytes:
    """Scrub a body in a charset that hides ASCII (UTF-16, UTF-32, UTF-7, EBCDIC...) in both
    of its views: the bytes as they are (a client that ignores or overrides the charset reads
    them as ASCII; red team N1) and the text in the charset, checked as UTF-8. It is sent back
    in its own charset, changed only where a view held a value; a body whose views keep
    producing one another's values is withheld."""
    out = body
    for _ in range(_VIEW_ROUNDS):
        raw = scrub(out, s)
        text = raw.decode(charset, errors="replace").encode("utf-8", "surrogatepass")
        clean = scrub(text, s)
        if clean != text:
            raw = clean.decode("utf-8", "replace").encode(charset, errors="replace")
        if raw == out:
            return out
        out = raw
    return WITHHELD


_VIEW_ROUNDS = 4  # scrubbing one view can only create a value in the other that many times


class Transcoder:
    """A streamed body in a charset that hides ASCII, turned into UTF-8 as it passes: by its
    declared charset (the Content-Type already says utf-8), else by what its first bytes show
    (a byte-order mark, JSON's NUL pattern), which needs no header. Its bytes are scrubbed as
    they came before they are decoded: the transcoding can be undone by the client, so a value
    in the raw bytes would otherwise come back (red team N1)."""

    def __init__(self, content_type: str, charset: str | None, s: ScrubSet) -> None:
        self.content_type = content_type
        self.pairs = s
        self.decoder = codecs.getincrementaldecoder(charset)("replace") if charset else None
        self.decoder_name = charset or ""
        self.raw = StreamScrubber(s) if charset else None
        self.decided = charset is not None
        self.head = b""

    def feed(self, data: bytes, final: bool) -> bytes:
        if not self.decided:
            self.head += data
            if len(self.head) < 4 and not final:
                return b""
            data, self.head, self.decided = self.head, b"", True
            charset = charsets.sniffed(self.content_type, data[:4])
            if charset is not None:
                self.decoder = codecs.getincrementaldecoder(charset)("replace")
                self.decoder_name = charset
                self.raw = StreamScrubber(self.pairs)
        if self.decoder is None or self.raw is None:
            return data
        data = self.raw.feed(data) if data else b""
        if final:
            data += self.raw.feed(b"")
        try:
            text = self.decoder.decode(data, final)
        except UnicodeDecodeError:
            # Python's UTF-16/32 stream decoders refuse a stream without a byte-order mark
            # even with errors="replace": read it little-endian, as ``bytes.decode`` does
            # (nothing was consumed: the mark is looked for in the first bytes)
            fallback = f"{self.decoder_name}-le" if self.decoder_name in _NEEDS_BOM else "latin-1"
            self.decoder = codecs.getincrementaldecoder(fallback)("replace")
            text = self.decoder.decode(data, final)
        return text.encode("utf-8", "surrogatepass")


_NEEDS_BOM = frozenset({"utf-16", "utf-32"})
