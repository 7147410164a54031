"""Text in a charset the scrubber would not see through.

The scrubber looks for a secret's UTF-8/ASCII forms. A body in UTF-16, UTF-32, UTF-7 or an
EBCDIC code page holds the same characters as other bytes, and clients decode it by the
``charset`` parameter, a byte-order mark, or (JSON) the pattern of NUL bytes at its start
(RFC 4627 section 3). Such a body is transcoded to UTF-8 to be checked. Charsets that keep
ASCII as it is (UTF-8, Latin-1, the cp125x and ISO-8859 families...) need nothing: a token is
ASCII, so its bytes are the same.
"""

from __future__ import annotations

import codecs
import functools
from email.message import Message

# what a secret is made of, and the JSON/URL punctuation around it
_PROBE = 'AZaz09-_.~+/=:%\\"{}[], \n'

_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
_TEXTUAL = ("text/", "json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded")


@functools.lru_cache(maxsize=256)
def _foreign(name: str) -> str | None:
    """The codec's canonical name if it does not keep ASCII bytes as they are, else None."""
    try:
        info = codecs.lookup(name)
        same = _PROBE.encode(info.name) == _PROBE.encode("ascii")
    except (LookupError, UnicodeError, ValueError):
        return None  # unknown to Python: a client that knows it is rare; nothing to decode with
    return None if same else info.name


def declared(content_type: str) -> str | None:
    """The ``charset`` of a Content-Type when it is one the scrubber cannot see through."""
    if "charset" not in content_type.lower():
        return None
    msg = Message()
    msg["content-type"] = content_type
    charset = msg.get_content_charset()
    return _foreign(charset) if charset else None


def sniffed(content_type: str, head: bytes) -> str | None:
    """Without a declared charset: a byte-order mark, or NUL bytes where JSON text in UTF-16
    or UTF-32 has them (clients and ``json.loads`` of bytes detect both)."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    ctype = content_type.lower()
    if ctype and not any(t in ctype for t in _TEXTUAL):
        return None  # binary: no client reads it as text by itself
    if len(head) < 4:
        return None
    b = [x == 0 for x in head[:4]]
    if b == [True, True, True, False]:
        return "utf-32-be"
    if b == [False, True, True, True]:
        return "utf-32-le"
    if b[0] and not b[1]:
        return "utf-16-be"
    if b[1] and not b[0] and not (b[2] and b[3]):
        return "utf-16-le"
    return None


def with_utf8(content_type: str) -> str:
    """The Content-Type with its charset replaced by utf-8 (a transcoded body)."""
    msg = Message()
    msg["content-type"] = content_type
    msg.set_param("charset", "utf-8")
    return msg["content-type"]
