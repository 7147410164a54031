"""Placeholders: inert tokens agents hold in place of real credentials.

A placeholder is ``<optional prefix><core>``; the core is ``egph`` + 40 base62 characters
(~238 bits), so it is unguessable and survives URL-encoding unchanged. The prefix is cosmetic
(e.g. ``ghp_`` or ``sk-``) so client libraries that check a token's shape accept it. The proxy
finds placeholders by their core, wherever they hide.
"""

from __future__ import annotations

import re
import secrets
import string

CORE_MARKER = "egph"
CORE_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
CORE_RE = re.compile(f"{CORE_MARKER}[0-9A-Za-z]{{{CORE_LENGTH}}}")
CORE_RE_BYTES = re.compile(CORE_RE.pattern.encode())


def mint_placeholder(prefix: str = "") -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{0,16}", prefix):
        raise ValueError("placeholder prefix: up to 16 of [A-Za-z0-9_.-]")
    return prefix + CORE_MARKER + "".join(secrets.choice(_ALPHABET) for _ in range(CORE_LENGTH))


def core_of(placeholder: str) -> str:
    m = CORE_RE.search(placeholder)
    if not m:
        raise ValueError("not a placeholder")
    return m.group(0)


def find_placeholders(text: str) -> set[str]:
    return set(CORE_RE.findall(text))
