"""The chain every decision log line belongs to: ``seq``, ``prev_hash`` and a keyed ``mac``.

``prev_hash`` is the SHA-256 of the previous line: anyone can check it, and anyone with write
access to the file can also recompute it after an edit. The ``mac`` is HMAC-SHA256 over the
line's own bytes (which include ``prev_hash``, so the MACs chain too) with a key only the
writer holds (``--log-key-file``): without the key an edited, deleted or reordered history
cannot be re-signed. The ``mac`` is always the last field, so a verifier recovers the signed
bytes by cutting it off the end of the line, without re-serializing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from egress.audit.events import Fields

GENESIS = "0" * 64
_MAC_TAIL = re.compile(rb',"mac":(?:"([0-9a-f]{64})"|null)\}$')


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def mac_of(key: bytes, body: bytes) -> str:
    return hmac.digest(key, body, "sha256").hex()  # one-shot: the C fast path


def split_mac(line: bytes) -> tuple[bytes, str | None]:
    """(the bytes the MAC signs, the MAC) of a line; (line, None) for unkeyed lines."""
    m = _MAC_TAIL.search(line)
    if m is None:
        return line, None
    return line[: m.start()] + b"}", (m.group(1).decode() if m.group(1) else None)


def check_mac(key: bytes, line: bytes) -> bool | None:
    """True/False for a keyed line, None when the line carries no MAC."""
    body, mac = split_mac(line)
    if mac is None:
        return None
    return hmac.compare_digest(mac_of(key, body), mac)


def load_key(path: Path, *, create: bool) -> bytes:
    """The chain key (hex in a 0600 file); a new random one when ``create`` and absent."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            raise
        text = _create_key(path)
    try:
        key = bytes.fromhex(text)
    except ValueError as e:
        raise ValueError(f"{path}: the log key must be hex") from e
    if len(key) < 16:
        raise ValueError(f"{path}: the log key must be at least 16 bytes")
    return key


def _create_key(path: Path) -> str:
    """A new key file, complete before anyone can see it: workers starting together race to
    create it, and the loser reads the winner's (written under a private name, then linked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text().strip()  # another process made it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)
    return text


def key_id(key: bytes) -> str:
    """A short public name of a key (never the key): lets verify say which key signed."""
    return hashlib.sha256(b"egress-log-key\0" + key).hexdigest()[:16]


class Chain:
    """Turns events into lines: numbers them, links them, signs them. Not thread-safe: the
    writer calls it under its lock."""

    def __init__(self, key: bytes | None, prev: str = GENESIS, seq: int = 0) -> None:
        self.key = key
        self.prev = prev
        self.seq = seq
        # applied to each event before it is written (the proxy removes released values)
        self.redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def line(self, event: dict[str, Any], note: dict[str, Any] | None = None) -> bytes:
        event[Fields.SEQ] = self.seq
        event[Fields.PREV_HASH] = self.prev
        if note:
            event[Fields.LOG_NOTE] = note
        event.pop(Fields.MAC, None)
        body = orjson.dumps(self.redact(event) if self.redact is not None else event)
        if self.key is None:
            line = body[:-1] + b',"mac":null}'
            event[Fields.MAC] = None
        else:
            mac = mac_of(self.key, body)
            line = body[:-1] + b',"mac":"' + mac.encode() + b'"}'
            event[Fields.MAC] = mac
        self.prev = line_hash(line)
        self.seq += 1
        return line + b"\n"

    def record_mac(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A seal or anchor record, signed like a line (``mac`` null without a key)."""
        doc.pop("mac", None)
        body = orjson.dumps(doc)
        doc["mac"] = mac_of(self.key, body) if self.key is not None else None
        return doc


def record_ok(key: bytes, doc: dict[str, Any]) -> bool | None:
    """Whether a seal or anchor record's ``mac`` is right: None when it carries none."""
    mac = doc.get("mac")
    if not mac:
        return None
    body = orjson.dumps({k: v for k, v in doc.items() if k != "mac"})
    return hmac.compare_digest(mac_of(key, body), str(mac))
