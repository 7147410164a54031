"""Pick the secret backend from flags/env: Vault when an address is given, else the local file.

Vault auth, first that applies: AppRole (``--vault-role-id``/``VAULT_ROLE_ID`` with
``--vault-secret-id``/``VAULT_SECRET_ID``), Kubernetes (``--vault-k8s-role``, JWT from
``--vault-k8s-jwt``, default the projected service-account token), else a token
(``--vault-token``/``VAULT_TOKEN``, or ``~/.vault-token``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from egress.errors import ConfigError
from egress.options import (
    SECRETS_FILE,
    SECRETS_KEY_FILE,
    Option,
    add_options,
    state_file,
)
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

VAULT_OPTIONS: list[Option] = [
    Option("--vault-addr", "VAULT_ADDR", None, "use Vault (KV v2) at this address for secrets"),
    Option("--vault-token", "VAULT_TOKEN", None, "token auth"),
    Option("--vault-role-id", "VAULT_ROLE_ID", None, "AppRole auth: role id"),
    Option("--vault-secret-id", "VAULT_SECRET_ID", None, "AppRole auth: secret id"),
    Option("--vault-k8s-role", "EGRESS_VAULT_K8S_ROLE", None, "Kubernetes auth: Vault role"),
    Option(
        "--vault-k8s-jwt",
        "EGRESS_VAULT_K8S_JWT",
        str(DEFAULT_K8S_JWT),
        "Kubernetes auth: service-account JWT file",
    ),
    Option("--vault-mount", "EGRESS_VAULT_MOUNT", "kv", "KV v2 mount"),
    Option(
        "--vault-prefix",
        "EGRESS_VAULT_PREFIX",
        "proxy-secrets",
        "path prefix of proxy-only secrets",
    ),
    Option("--vault-cacert", "VAULT_CACERT", None, "CA bundle to verify Vault's TLS certificate"),
    Option(
        "--vault-timeout", "EGRESS_VAULT_TIMEOUT", "2.0", "seconds before a Vault call is a deny"
    ),
    Option(
        "--secrets-ttl", "EGRESS_SECRETS_TTL", "30", "seconds a per-agent secret index is cached"
    ),
]

SecretStore = LocalSecretStore | VaultSecretStore


def add_vault_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, VAULT_OPTIONS)


@dataclass(frozen=True)
class VaultConfig:
    """The Vault flags, parsed. Built only when ``--vault-addr`` is set."""

    addr: str
    token: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    k8s_role: str | None = None
    k8s_jwt: Path = DEFAULT_K8S_JWT
    mount: str = "kv"
    prefix: str = "proxy-secrets"
    cacert: str | None = None
    timeout: float = 2.0
    ttl: float = 30.0

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> VaultConfig | None:
        """None without ``--vault-addr`` (the local store applies); else the checked settings."""
        if not getattr(a, "vault_addr", None):
            return None
        try:
            timeout, ttl = float(a.vault_timeout), float(a.secrets_ttl)
        except ValueError as e:
            raise ConfigError(f"--vault-timeout/--secrets-ttl must be seconds: {e}") from e
        return cls(
            addr=a.vault_addr,
            token=a.vault_token or None,
            role_id=a.vault_role_id or None,
            secret_id=a.vault_secret_id or None,
            k8s_role=a.vault_k8s_role or None,
            k8s_jwt=Path(a.vault_k8s_jwt),
            mount=a.vault_mount,
            prefix=a.vault_prefix,
            cacert=a.vault_cacert or None,
            timeout=timeout,
            ttl=ttl,
        )


def _auth(v: VaultConfig) -> VaultAuth:
    if v.role_id or v.secret_id:
        if not (v.role_id and v.secret_id):
            raise ConfigError("AppRole auth needs both --vault-role-id and --vault-secret-id")
        return AppRoleAuth(v.role_id, v.secret_id)
    if v.k8s_role:
        return KubernetesAuth(v.k8s_role, v.k8s_jwt)
    token = v.token
    if not token:
        token_file = Path.home() / ".vault-token"
        token = token_file.read_text().strip() if token_file.is_file() else None
    if not token:
        raise ConfigError(
            "Vault needs credentials: --vault-token, AppRole or Kubernetes auth",
            reason="vault_auth_missing",
        )
    return TokenAuth(token)


def vault_store(v: VaultConfig) -> VaultSecretStore:
    session = VaultSession(v.addr, _auth(v), timeout=v.timeout, verify=v.cacert or True)
    return VaultSecretStore(session, mount=v.mount, prefix=v.prefix, ttl=v.ttl, timeout=v.timeout)


def make_store(vault: VaultConfig | None, secrets_file: Path, key_file: Path) -> SecretStore:
    """Vault when configured, else the local encrypted file (created on first use)."""
    if vault is not None:
        return vault_store(vault)
    return LocalSecretStore.open(secrets_file, key_file, create=True)


def open_store(a: argparse.Namespace) -> SecretStore:
    """The store the command-line flags in ``a`` name (used by ``egress secrets``)."""
    state = Path(a.state_dir)
    return make_store(
        VaultConfig.from_args(a),
        state_file(a.secrets_file, state, SECRETS_FILE),
        state_file(a.secrets_key_file, state, SECRETS_KEY_FILE),
    )
