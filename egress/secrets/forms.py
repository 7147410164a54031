"""The encoded forms a secret value takes in an answer, as literal bytes and as patterns.

Literal forms (found with fast substring search): plain; percent-encoding with upper- and
lower-case hex, ``+`` for spaces or not; JSON string escapes (the minimal ones, ``\\/`` for
``/``, every character ``\\uXXXX`` in lower- or upper-case hex, Go's ``\\u003c \\u003e
\\u0026``, ASCII-only); base64 (standard and URL-safe alphabets) of the value alone and as it
appears inside a longer blob at each of the three byte alignments.

Patterns cover what a list of literals cannot: any mix of escaped and plain characters in one
value (``\\u0067hs_...``, ``abc%2fdef%2F``), and base64 wrapped into lines (MIME at 76 columns,
PEM at 64, with CRLF or LF, at any offset) which ``wrapped_blocks`` finds for re-checking.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from urllib.parse import quote, quote_plus

import orjson

_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n"}
_JSON_SHORT |= {"\r": "\\r", "\t": "\\t"}


def _lower_hex(text: str) -> str:
    """Percent escapes with lower-case hex digits (``%2f``), as some encoders write them."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _u_escape(ch: str) -> list[str]:
    """``\\uXXXX`` of one character (a surrogate pair outside the BMP)."""
    code = ord(ch)
    if code < 0x10000:
        return [f"\\u{code:04x}"]
    code -= 0x10000
    return [f"\\u{0xD800 + (code >> 10):04x}", f"\\u{0xDC00 + (code & 0x3FF):04x}"]


def _json_all_escaped(text: str) -> str:
    return "".join("".join(_u_escape(ch)) for ch in text)


def _json_go(text: str) -> bytes:
    """Go's encoding/json escapes HTML-significant characters and the JS line separators."""
    out = orjson.dumps(text)[1:-1]
    for ch in "<>&\u2028\u2029":
        out = out.replace(ch.encode(), _u_escape(ch)[0].encode())
    return out


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return b""


def b64_fragments(raw: bytes) -> list[bytes]:
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
    """The literal forms of ``text`` in a fixed order (pairs up a value with its placeholder:
    the n-th form of a value is replaced by the n-th form of its placeholder)."""
    raw = text.encode()
    pct = quote(text, safe="")
    pct_plus = quote_plus(text, safe="")
    escaped = _json_all_escaped(text)
    return [
        raw,
        pct.encode(),
        _lower_hex(pct).encode(),
        pct_plus.encode(),
        _lower_hex(pct_plus).encode(),
        orjson.dumps(text)[1:-1],
        orjson.dumps(text)[1:-1].replace(b"/", b"\\/"),  # encoders that escape '/'
        escaped.encode(),
        escaped.upper().replace("\\U", "\\u").encode(),
        _json_go(text),
        json.dumps(text)[1:-1].encode(),  # ASCII-only JSON (non-ASCII as \uXXXX)
        _latin1(text),  # HTTP/1 header values are often written as latin-1
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        *b64_fragments(raw),
    ]


def b64_forms(text: str) -> list[bytes]:
    """The base64 forms of ``text`` (the tail of ``encoded_forms``), empty ones included so
    that a value's and a placeholder's forms pair up by position."""
    raw = text.encode()
    return [base64.b64encode(raw), base64.urlsafe_b64encode(raw), *b64_fragments(raw)]


# What detection undoes before it searches: JSON escapes (surrogate pairs, \uXXXX in either
# case, the short ones) and percent escapes; then line breaks and the URL-safe alphabet.
_UNESCAPE = re.compile(
    rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|\\u([0-9a-fA-F]{4})|%([0-9a-fA-F]{2})|\\([/\\\"nrtbf])"
)
_SHORT = {b"/": b"/", b"\\": b"\\", b'"': b'"', b"n": b"\n", b"r": b"\r", b"t": b"\t"}
_SHORT |= {b"b": b"\b", b"f": b"\f"}
B64_NORMAL = bytes.maketrans(b"-_", b"+/")


def _unescaped(m: re.Match[bytes]) -> bytes:
    hi, lo, u, pct, short = m.groups()
    if hi is not None:
        code = 0x10000 + ((int(hi, 16) - 0xD800) << 10) + (int(lo, 16) - 0xDC00)
        return chr(code).encode()
    if u is not None:
        return chr(int(u, 16)).encode("utf-8", "surrogatepass")
    if pct is not None:
        return bytes([int(pct, 16)])
    return _SHORT[short]


def unescape(data: bytes) -> bytes:
    """``data`` with JSON and percent escapes decoded (for detection only: lenient, lossy)."""
    if b"\\" not in data and b"%" not in data:
        return data
    return _UNESCAPE.sub(_unescaped, data)


def hex_class(digits: str) -> bytes:
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits).encode()


@functools.lru_cache(maxsize=4096)
def _char_pattern(ch: str) -> bytes:
    """Every way one character of a value can be written: plain, ``%XX`` per UTF-8 byte,
    ``\\uXXXX`` (hex digits in either case), JSON's short escapes, ``+`` for a space."""
    alts = [re.escape(ch.encode())]
    alts.append(b"".join(b"%" + hex_class(f"{b:02x}") for b in ch.encode()))
    alts.append(b"".join(rb"\\u" + hex_class(u[2:]) for u in _u_escape(ch)))
    if ch in _JSON_SHORT:
        alts.append(re.escape(_JSON_SHORT[ch].encode()))
    if ch == " ":
        alts.append(rb"\+")
    return b"(?:" + b"|".join(alts) + b")"


def mixed_pattern(text: str) -> bytes:
    """A regular expression matching ``text`` with any mix of escaped and plain characters."""
    return b"".join(_char_pattern(ch) for ch in text)


# A run of base64 text broken into lines: LF, CRLF, or the same written as JSON escapes.
_B64 = rb"A-Za-z0-9+/_\-"
WRAPPED_BLOCK = re.compile(
    rb"(?<![" + _B64 + rb"=])[" + _B64 + rb"]++=*"
    rb"(?:(?:\r?\n|(?:\\r)?\\n)[" + _B64 + rb"]++=*)+"
)
_BREAK = re.compile(rb"\r?\n|(?:\\r)?\\n")


def unwrap(block: bytes) -> tuple[bytes, list[int], bytes]:
    """The base64 text of a wrapped block without its line breaks, the line lengths and the
    first line break (to wrap a scrubbed text the same way again)."""
    lines = _BREAK.split(block)
    brk = _BREAK.search(block)
    return b"".join(lines), [len(line) for line in lines], brk.group(0) if brk else b"\n"


def rewrap(text: bytes, lengths: list[int], brk: bytes) -> bytes:
    """``text`` broken into lines like the original block: the first line as long as it was,
    then lines of the original width (the second line's length)."""
    first = lengths[0]
    width = max(lengths[1] if len(lengths) > 2 else max(lengths), 1)
    lines = [text[:first]]
    rest = text[first:]
    while rest:
        lines.append(rest[:width])
        rest = rest[width:]
    return brk.join(line for line in lines if line) if len(lines) > 1 else text
