"""Agent-controlled text, made safe for the log reader's terminal (SECURITY 20a).

Paths, hosts and error texts in decision events come from what agents sent. Printed raw, an
ESC or a C1 CSI starts a terminal control sequence (retitle the window, rewrite lines, fake
output), CR/LF forge rows, NUL and DEL hide text, and bidi overrides reorder what is shown.
Every output mode of ``egress logs query`` passes through here: table and tab-separated text
get visible ``\\xNN``/``\\uNNNN`` escapes, JSON keeps valid JSON with those characters escaped
as ``\\u`` sequences (orjson leaves DEL, C1 and bidi controls raw).
"""

from __future__ import annotations

import re
import unicodedata

# Every character that is not plain ASCII is looked at (ASCII text, the common case, costs one
# regex scan). Escaped: C0 (tab, CR and LF included: they would split a row), DEL, C1, and
# every Unicode character that is invisible or changes how text around it is shown: format
# characters (bidi marks and overrides, ALM U+061C, zero-width joiners, soft hyphen, the TAG
# block U+E0000.. that smuggles hidden ASCII), line/paragraph separators, private-use,
# surrogates, unassigned code points, and blank "letters" (Hangul fillers).
_CANDIDATE = re.compile("[^\x20-\x7e]")
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _HIDDEN_CATEGORIES or ch in _BLANK_LETTERS


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    if not _unsafe(ch):
        return ch
    c = ord(ch)
    if c < 0x100:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}" if c < 0x10000 else f"\\U{c:08x}"


def printable(value: object) -> str:
    """A cell for a table or a tab-separated line: no control character survives."""
    text = "" if value is None else str(value)
    return _CANDIDATE.sub(_escape, text)


def _json_escape(m: re.Match[str]) -> str:
    ch = m.group()
    if not _unsafe(ch):
        return ch
    c = ord(ch)
    if c < 0x10000:
        return f"\\u{c:04x}"
    c -= 0x10000  # JSON spells astral characters as a surrogate pair
    return f"\\u{0xD800 + (c >> 10):04x}\\u{0xDC00 + (c & 0x3FF):04x}"


def json_safe(line: str) -> str:
    """A serialized JSON line with the characters JSON allows raw escaped as ``\\uNNNN``
    (C0 controls are already escaped by the serializer)."""
    return _CANDIDATE.sub(_json_escape, line)
