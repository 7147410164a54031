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

# C0 (tab, CR and LF included: they would split a row), DEL, C1, and the Unicode format
# characters that reorder or hide text (bidi embeddings/overrides/isolates, line separators)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(value: object) -> str:
    """A cell for a table or a tab-separated line: no control character survives."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(_escape, text)


_UNSAFE_JSON = re.compile("[\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def json_safe(line: str) -> str:
    """A serialized JSON line with the characters JSON allows raw escaped as ``\\uNNNN``
    (C0 controls are already escaped by the serializer)."""
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
