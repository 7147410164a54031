"""Who is calling: the identity the platform vouches for, never what the agent says.

The raw owner (``alice@example.com``) is the authorization subject and is what the policy sees.
Sanitized forms exist only where a name must obey a grammar (Kubernetes namespaces, labels).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
# A user is an owner identifier (often an e-mail). It also becomes one segment of a Vault-shaped
# path, so path separators, whitespace and control characters are refused outright.
_USER_FORBIDDEN = re.compile(r"[/\\\s\x00-\x1f\x7f]")


def validate_agent_name(name: str) -> str:
    """Agent names are DNS-label-like so they fit everywhere (paths, labels, proxy userinfo)."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid agent name {name!r}: use lowercase letters, digits, '.', '_' or '-' "
            "(1-63 characters, starting and ending with a letter or digit)"
        )
    return name


def validate_user(user: str) -> str:
    if not user or len(user) > 254 or _USER_FORBIDDEN.search(user) or user in {".", ".."}:
        raise ValueError(f"invalid user {user!r}: no '/', '\\', whitespace or control characters")
    return user


def dns_label(text: str, limit: int = 63) -> str:
    """A lowercase RFC 1123 label from ``text``; a short hash keeps distinct inputs distinct."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    room = limit - len(digest) - 1
    return f"{slug[:room].rstrip('-')}-{digest}"


def default_namespace(user: str, agent: str) -> str:
    return dns_label(f"agent-{agent}-{user}")


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    agent: str
    namespace: str

    def as_policy_input(self) -> dict[str, str]:
        return {"user": self.user, "name": self.agent, "namespace": self.namespace}

    def __str__(self) -> str:
        return f"{self.user}/{self.agent}"
