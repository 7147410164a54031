"""Pick the secret backend from flags/env: Vault when an address is given, else the local file.

Vault auth, first that applies: AppRole (``--vault-role-id``/``VAULT_ROLE_ID`` with
``--vault-secret-id``/``VAULT_SECRET_ID``), Kubernetes (``--vault-k8s-role``, JWT from
``--vault-k8s-jwt``, default the projected service-account token), else a token
(``--vault-token``/``VAULT_TOKEN``, or ``~/.vault-token``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from egress.errors import ConfigError
from egress.proxy.config import add_options
from egress.secrets.local import LocalSecretStore
from egress.secrets.vault import VaultSecretStore
from egress.secrets.vault_auth import (
    DEFAULT_K8S_JWT,
    AppRoleAuth,
    KubernetesAuth,
    TokenAuth,
    VaultAuth,
    VaultSession,
)

VAULT_OPTIONS: list[tuple[str, str, str | None, str]] = [
    ("--vault-addr", "VAULT_ADDR", None, "use Vault (KV v2) at this address for secrets"),
    ("--vault-token", "VAULT_TOKEN", None, "token auth"),
    ("--vault-role-id", "VAULT_ROLE_ID", None, "AppRole auth: role id"),
    ("--vault-secret-id", "VAULT_SECRET_ID", None, "AppRole auth: secret id"),
    ("--vault-k8s-role", "EGRESS_VAULT_K8S_ROLE", None, "Kubernetes auth: Vault role"),
    (
        "--vault-k8s-jwt",
        "EGRESS_VAULT_K8S_JWT",
        str(DEFAULT_K8S_JWT),
        "Kubernetes auth: service-account JWT file",
    ),
    ("--vault-mount", "EGRESS_VAULT_MOUNT", "kv", "KV v2 mount"),
    ("--vault-prefix", "EGRESS_VAULT_PREFIX", "proxy-secrets", "path prefix of proxy-only secrets"),
    ("--vault-cacert", "VAULT_CACERT", None, "CA bundle to verify Vault's TLS certificate"),
    ("--vault-timeout", "EGRESS_VAULT_TIMEOUT", "2.0", "seconds before a Vault call is a deny"),
    ("--secrets-ttl", "EGRESS_SECRETS_TTL", "30", "seconds a per-agent secret index is cached"),
]


def add_vault_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, VAULT_OPTIONS)


def _auth(a: argparse.Namespace) -> VaultAuth:
    if a.vault_role_id or a.vault_secret_id:
        if not (a.vault_role_id and a.vault_secret_id):
            raise ConfigError("AppRole auth needs both --vault-role-id and --vault-secret-id")
        return AppRoleAuth(a.vault_role_id, a.vault_secret_id)
    if a.vault_k8s_role:
        return KubernetesAuth(a.vault_k8s_role, Path(a.vault_k8s_jwt))
    token = a.vault_token
    if not token:
        token_file = Path.home() / ".vault-token"
        token = token_file.read_text().strip() if token_file.is_file() else None
    if not token:
        raise ConfigError(
            "Vault needs credentials: --vault-token, AppRole or Kubernetes auth",
            reason="vault_auth_missing",
        )
    return TokenAuth(token)


def vault_store(a: argparse.Namespace) -> VaultSecretStore:
    try:
        timeout, ttl = float(a.vault_timeout), float(a.secrets_ttl)
    except ValueError as e:
        raise ConfigError(f"--vault-timeout/--secrets-ttl must be seconds: {e}") from e
    session = VaultSession(a.vault_addr, _auth(a), timeout=timeout, verify=a.vault_cacert or True)
    return VaultSecretStore(
        session, mount=a.vault_mount, prefix=a.vault_prefix, ttl=ttl, timeout=timeout
    )


def open_store(a: argparse.Namespace) -> LocalSecretStore | VaultSecretStore:
    if getattr(a, "vault_addr", None):
        return vault_store(a)
    state = Path(a.state_dir)
    return LocalSecretStore.open(
        Path(a.secrets_file or state / "secrets.enc"),
        Path(a.secrets_key_file or state / "secrets.key"),
        create=True,
    )
