"""Proxy-only secrets: the agent holds a placeholder, only the proxy reads the value.

One interface (``SecretStore``), several backends: the local encrypted file (embedded default,
``egress.secrets.local``) and Vault KV v2 (production). Paths follow Vault's layout in both:
``kv/proxy-secrets/{user}/{agent}/{name}``.
"""

from __future__ import annotations

from egress.secrets.model import SecretRecord, SecretRef, SecretStore, SecretValue, secret_path
from egress.secrets.placeholders import find_placeholders, mint_placeholder

__all__ = [
    "SecretRecord",
    "SecretRef",
    "SecretStore",
    "SecretValue",
    "find_placeholders",
    "mint_placeholder",
    "secret_path",
]
