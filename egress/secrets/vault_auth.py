"""How the proxy proves itself to Vault: token, AppRole or Kubernetes service-account JWT.

``VaultSession`` owns one ``hvac.Client``. It logs in on first use, renews a renewable token
when less than a third of its TTL is left, and logs in again when the token has expired or
been revoked (AppRole and Kubernetes can; a static token cannot, so its failure is final until
an operator replaces it). hvac is synchronous: callers run these methods in a worker thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import hvac
import hvac.exceptions

from egress import reasons
from egress.errors import SecretStoreError

DEFAULT_K8S_JWT = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class VaultAuth(Protocol):
    name: str
    can_relogin: bool

    def login(self, client: hvac.Client) -> None: ...


@dataclass
class TokenAuth:
    token: str
    name: str = "token"
    can_relogin: bool = False

    def login(self, client: hvac.Client) -> None:
        client.token = self.token


@dataclass
class AppRoleAuth:
    role_id: str
    secret_id: str
    mount_point: str = "approle"
    name: str = "approle"
    can_relogin: bool = True

    def login(self, client: hvac.Client) -> None:
        client.auth.approle.login(self.role_id, self.secret_id, mount_point=self.mount_point)


@dataclass
class KubernetesAuth:
    """The proxy's projected service-account token, re-read at every login (it rotates)."""

    role: str
    jwt_path: Path = DEFAULT_K8S_JWT
    mount_point: str = "kubernetes"
    name: str = "kubernetes"
    can_relogin: bool = True

    def login(self, client: hvac.Client) -> None:
        jwt = self.jwt_path.read_text().strip()
        client.auth.kubernetes.login(self.role, jwt, mount_point=self.mount_point)


class VaultSession:
    def __init__(
        self,
        addr: str,
        auth: VaultAuth,
        *,
        timeout: float = 2.0,
        verify: bool | str = True,
        namespace: str | None = None,
    ) -> None:
        self.auth = auth
        self.client = hvac.Client(url=addr, timeout=timeout, verify=verify, namespace=namespace)
        self._lock = threading.Lock()
        self._expires_at = 0.0  # monotonic; 0 = unknown/never logged in
        self._ttl = 0.0
        self._logged_in = False
        self.logins = 0
        self.renewals = 0

    def _login(self) -> None:
        try:
            self.auth.login(self.client)
        except (hvac.exceptions.VaultError, OSError) as e:
            raise SecretStoreError(
                reasons.SECRET_UNAVAILABLE,
                f"vault login ({self.auth.name}) failed: {type(e).__name__}",
            ) from e
        self.logins += 1
        self._logged_in = True
        self._read_ttl()

    def _read_ttl(self) -> None:
        info = self.client.auth.token.lookup_self()["data"]
        ttl = float(info.get("ttl") or 0)
        self._ttl = ttl
        self._expires_at = time.monotonic() + ttl if ttl > 0 else float("inf")
        self._renewable = bool(info.get("renewable"))

    def ensure(self) -> hvac.Client:
        """A client with a valid token: logs in, renews or re-logs in as needed."""
        with self._lock:
            if not self._logged_in:
                self._login()
                return self.client
            left = self._expires_at - time.monotonic()
            if left <= 0:
                if not self.auth.can_relogin:
                    raise SecretStoreError(reasons.SECRET_UNAVAILABLE, "vault token expired")
                self._login()
            elif left < self._ttl / 3 and self._renewable:
                try:
                    self.client.auth.token.renew_self()
                    self.renewals += 1
                    self._read_ttl()
                except (hvac.exceptions.VaultError, OSError):
                    if self.auth.can_relogin:
                        self._login()
            return self.client

    def invalidate(self) -> None:
        """The token was refused (revoked early): force a fresh login next time."""
        with self._lock:
            if self.auth.can_relogin:
                self._logged_in = False
