"""Secret records, the store interface the proxy reads through, and the admin interface the CLI
writes through; every backend implements both."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Protocol

from egress.identity.model import Identity

DEFAULT_MOUNT = "kv"
DEFAULT_PREFIX = "proxy-secrets"


def secret_path(
    user: str, agent: str, name: str, *, mount: str = DEFAULT_MOUNT, prefix: str = DEFAULT_PREFIX
) -> str:
    return f"{mount}/{prefix}/{user}/{agent}/{name}"


class SecretValue:
    """A real secret. repr and str never show the value: tracebacks and logs cannot leak it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# a host binding: a DNS name or glob (``*`` one label, ``**`` any), an IPv4 or bracketed IPv6
_HOST_PATTERN = re.compile(r"(?:[A-Za-z0-9*_-]+(?:\.[A-Za-z0-9*_-]+)*\.?|\[[0-9A-Fa-f:.]+\])")
# how much of a value a placeholder prefix may share with it (a "ghp_" style marker)
_PREFIX_OVERLAP = 8


def validate_secret(value: str, hosts: list[str], placeholder_prefix: str = "") -> None:
    """What every backend checks before storing a secret."""
    if not value:
        raise ValueError("empty secret value")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("the value holds control characters or bytes that are not UTF-8")
    if not hosts:
        raise ValueError("a secret needs at least one host it may be sent to (--hosts)")
    bad = [h for h in hosts if not _HOST_PATTERN.fullmatch(h)]
    if bad:
        raise ValueError(f"not a host name, glob or IP address: {', '.join(map(repr, bad))}")
    # the agent is shown the placeholder: its prefix must not hand over part of the value
    window = min(_PREFIX_OVERLAP, len(value))
    if placeholder_prefix and any(
        value[i : i + window] in placeholder_prefix for i in range(len(value) - window + 1)
    ):
        raise ValueError("the placeholder prefix repeats part of the value: the agent would see it")


def host_matches(pattern: str, host: str) -> bool:
    """Host binding globs: ``*`` matches exactly one DNS label, ``**`` any number of labels."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    p_labels, h_labels = pattern.split("."), host.split(".")
    if "**" in p_labels:
        i = p_labels.index("**")
        head, tail = p_labels[:i], p_labels[i + 1 :]
        if len(h_labels) < len(head) + len(tail) + 1:
            return False
        return _labels_match(head, h_labels[: len(head)]) and _labels_match(
            tail, h_labels[len(h_labels) - len(tail) :] if tail else []
        )
    return len(p_labels) == len(h_labels) and _labels_match(p_labels, h_labels)


def _labels_match(patterns: list[str], labels: list[str]) -> bool:
    return all(fnmatch.fnmatchcase(lab, pat) for pat, lab in zip(patterns, labels, strict=True))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Everything about a secret except its value: safe to pass around and log (by name)."""

    user: str
    agent: str
    name: str
    placeholder: str
    hosts: tuple[str, ...]
    # may travel over plain http (clear text on the wire); off unless the operator says so
    allow_plaintext: bool = False

    def owned_by(self, identity: Identity) -> bool:
        return self.user == identity.user and self.agent == identity.agent

    def admits_host(self, host: str) -> bool:
        return any(host_matches(p, host) for p in self.hosts)


@dataclass(frozen=True, slots=True)
class SecretRecord:
    ref: SecretRef
    value: SecretValue
    created: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)


class SecretStore(Protocol):
    """What the proxy needs from a secret backend. Implementations must fail closed by raising
    ``SecretStoreError`` (reason ``secret_unavailable``), never by returning a wrong value."""

    async def lookup(self, identity: Identity, placeholder_core: str) -> SecretRef | None:
        """The calling agent's secret this placeholder stands for, or None. Only the caller's
        own secrets are consulted, so another agent's placeholder is simply unknown here."""
        ...

    async def value(self, ref: SecretRef) -> SecretValue:
        """The real value, read only after policy and host binding approved the swap."""
        ...

    async def by_name(self, identity: Identity, name: str) -> tuple[SecretRef, SecretValue] | None:
        """The calling agent's secret of this name (the LLM gateway injects it by route)."""
        ...

    async def agent_secrets(self, identity: Identity) -> list[tuple[SecretRef, SecretValue]]:
        """Every secret this agent could have injected, on any host: what every answer to it
        is scrubbed of (a value stored upstream by one request can be read back by another)."""
        ...


class SecretAdmin(Protocol):
    """What ``egress secrets`` needs from a backend. Every call answers with ``SecretRef``s: an
    admin never gets a value back, and the CLI needs no per-backend cases."""

    def put(
        self,
        user: str,
        agent: str,
        name: str,
        value: str,
        hosts: list[str],
        *,
        placeholder_prefix: str = "",
        hints: dict[str, str] | None = None,
        allow_plaintext: bool = False,
    ) -> SecretRef:
        """Store or replace a secret; an existing placeholder is kept (rotation-safe)."""
        ...

    def rotate(self, user: str, agent: str, name: str, value: str) -> SecretRef:
        """New value, same placeholder, hosts and hints; ValueError if there is no such secret."""
        ...

    def delete(self, user: str, agent: str, name: str) -> bool:
        """False when there was no such secret."""
        ...

    def list(self) -> list[SecretRef]:
        """Every secret, sorted by user, agent, name; never a value."""
        ...

    def location(self, user: str, agent: str, name: str) -> str:
        """Where this secret lives, for messages (a path, and the server when remote)."""
        ...
