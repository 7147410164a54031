"""Errors egress raises on purpose, each carrying a reason code (see ``egress.reasons``).

EgressError                 base: ``reason`` + human message, never a secret value
├── ConfigError             bad flag, missing file, unreadable CA (CLI exits 2)
├── IdentityError           proxy credential missing/malformed/unknown (HTTP 407)
└── SecretStoreError        store unavailable, tampered, wrong key (deny: secret_unavailable)
"""

from __future__ import annotations


class EgressError(Exception):
    """Base class. ``str(err)`` is safe to show to an agent: it never holds secret values."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class ConfigError(EgressError):
    def __init__(self, message: str, reason: str = "config_invalid") -> None:
        super().__init__(reason, message)


class IdentityError(EgressError):
    pass


class SecretStoreError(EgressError):
    pass
