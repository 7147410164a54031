"""Proxy-only secrets in Vault (KV v2) via hvac.

Layout: ``<mount>/<prefix>/{user}/{agent}/{name}`` (default ``kv/proxy-secrets/...``), each
secret a KV v2 entry ``{value, placeholder, hosts, header?, format?}``. Agent-readable secrets
live under ``kv/agents/...``; this module never builds a path there.

The proxy keeps one placeholder index per agent (``{core: ref}`` plus values), loaded with a
list + reads under that agent's prefix and cached for ``ttl`` seconds, so rotation in Vault
takes effect within the TTL without a restart. Another agent's placeholder is never in the
calling agent's index, so it is unknown and the request is denied.

hvac is synchronous: every Vault call runs in a worker thread under ``timeout``. Any failure
(down, slow, 403, missing) raises ``SecretStoreError`` with reason ``secret_unavailable``; an
index that cannot be refreshed after its TTL is dropped rather than served stale.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import hvac.exceptions
import requests

from egress import reasons
from egress.errors import SecretStoreError
from egress.identity.model import Identity, validate_agent_name, validate_user
from egress.secrets.model import (
    DEFAULT_MOUNT,
    DEFAULT_PREFIX,
    SecretRef,
    SecretValue,
    validate_secret,
)
from egress.secrets.placeholders import core_of, mint_placeholder
from egress.secrets.vault_auth import VaultSession

T = TypeVar("T")
HINT_FIELDS = ("header", "format")  # how a client should present the placeholder (informational)
_VAULT_ERRORS = (
    hvac.exceptions.VaultError,
    requests.RequestException,
    OSError,
    KeyError,
    TypeError,
    ValueError,
)


@dataclass
class _Index:
    loaded_at: float
    by_core: dict[str, tuple[SecretRef, SecretValue]]


class VaultSecretStore:
    def __init__(
        self,
        session: VaultSession,
        *,
        mount: str = DEFAULT_MOUNT,
        prefix: str = DEFAULT_PREFIX,
        ttl: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        self.session = session
        self.mount = mount
        self.prefix = prefix.strip("/")
        self.ttl = ttl
        self.timeout = timeout
        self._indexes: dict[tuple[str, str], _Index] = {}
        self._loading: dict[tuple[str, str], asyncio.Lock] = {}
        self.reads = 0

    # -- paths --------------------------------------------------------------------------------
    def _agent_path(self, user: str, agent: str) -> str:
        return f"{self.prefix}/{validate_user(user)}/{validate_agent_name(agent)}"

    def _secret_path(self, user: str, agent: str, name: str) -> str:
        return f"{self._agent_path(user, agent)}/{validate_agent_name(name)}"

    def full_path(self, user: str, agent: str, name: str) -> str:
        return f"{self.mount}/{self._secret_path(user, agent, name)}"

    def location(self, user: str, agent: str, name: str) -> str:
        return f"{self.full_path(user, agent, name)} in Vault {self.session.client.url}"

    # -- sync Vault operations (worker thread / CLI) --------------------------------------------
    def _call(self, fn: Callable[[Any], T]) -> T:
        client = self.session.ensure()
        try:
            return fn(client)
        except hvac.exceptions.Forbidden:
            self.session.invalidate()
            raise

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            resp = self._call(
                lambda c: c.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                )
            )
        except hvac.exceptions.InvalidPath:
            return None
        self.reads += 1
        return dict(resp["data"]["data"])

    def _list(self, path: str) -> list[str]:
        try:
            resp = self._call(
                lambda c: c.secrets.kv.v2.list_secrets(path=path, mount_point=self.mount)
            )
        except hvac.exceptions.InvalidPath:
            return []
        return [k for k in resp["data"]["keys"] if not k.endswith("/")]

    @staticmethod
    def _ref(user: str, agent: str, name: str, doc: dict[str, Any]) -> SecretRef:
        hosts = doc.get("hosts", [])
        if isinstance(hosts, str):
            hosts = [h.strip() for h in hosts.split(",") if h.strip()]
        return SecretRef(
            user,
            agent,
            name,
            str(doc["placeholder"]),
            tuple(hosts),
            # a bool from egress, or the string `vault kv put ... allow_plaintext=true` stores
            doc.get("allow_plaintext") is True or doc.get("allow_plaintext") == "true",
        )

    def load_agent(self, user: str, agent: str) -> dict[str, tuple[SecretRef, SecretValue]]:
        base = self._agent_path(user, agent)
        index: dict[str, tuple[SecretRef, SecretValue]] = {}
        for name in self._list(base):
            doc = self._read(f"{base}/{name}")
            if not doc or "value" not in doc or "placeholder" not in doc:
                continue  # not a proxy secret (or half-written): never swappable
            ref = self._ref(user, agent, name, doc)
            index[core_of(ref.placeholder)] = (ref, SecretValue(str(doc["value"])))
        return index

    # -- SecretStore (proxy side) -------------------------------------------------------------
    async def _in_thread(self, fn: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(fn)
        except TimeoutError as e:
            raise SecretStoreError(
                reasons.SECRET_UNAVAILABLE, "vault did not answer in time"
            ) from e
        except SecretStoreError:
            raise
        except _VAULT_ERRORS as e:
            raise SecretStoreError(
                reasons.SECRET_UNAVAILABLE, f"vault error: {type(e).__name__}"
            ) from e

    async def _index(self, identity: Identity) -> _Index:
        key = (identity.user, identity.agent)
        idx = self._indexes.get(key)
        if idx is not None and time.monotonic() - idx.loaded_at < self.ttl:
            return idx
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:
            idx = self._indexes.get(key)
            if idx is not None and time.monotonic() - idx.loaded_at < self.ttl:
                return idx
            self._indexes.pop(key, None)  # expired: never served stale, even if Vault fails
            by_core = await self._in_thread(lambda: self.load_agent(identity.user, identity.agent))
            idx = _Index(time.monotonic(), by_core)
            self._indexes[key] = idx
            return idx

    async def lookup(self, identity: Identity, placeholder_core: str) -> SecretRef | None:
        entry = (await self._index(identity)).by_core.get(placeholder_core)
        return entry[0] if entry is not None else None

    async def by_name(self, identity: Identity, name: str) -> tuple[SecretRef, SecretValue] | None:
        for ref, value in (await self._index(identity)).by_core.values():
            if ref.name == name:
                return ref, value
        return None

    async def agent_secrets(self, identity: Identity) -> list[tuple[SecretRef, SecretValue]]:
        return list((await self._index(identity)).by_core.values())

    async def value(self, ref: SecretRef) -> SecretValue:
        idx = await self._index(Identity(ref.user, ref.agent, ""))
        entry = idx.by_core.get(core_of(ref.placeholder))
        if entry is None or entry[0] != ref:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"secret {ref.name!r} is gone")
        return entry[1]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.session.client.adapter.close()

    # -- SecretAdmin (CLI side, sync) ---------------------------------------------------------
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
        validate_secret(value, hosts, placeholder_prefix)
        path = self._secret_path(user, agent, name)
        old = self._read(path)
        placeholder = (
            str(old["placeholder"])
            if old and old.get("placeholder")
            else mint_placeholder(placeholder_prefix)
        )
        doc: dict[str, Any] = {k: v for k, v in (old or {}).items() if k in HINT_FIELDS}
        doc.update({k: v for k, v in (hints or {}).items() if k in HINT_FIELDS})
        doc.update(value=value, placeholder=placeholder, hosts=[h.lower() for h in hosts])
        if allow_plaintext:  # absent means no: entries written before the flag stay refused
            doc["allow_plaintext"] = True
        self._call(
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=path, secret=doc, mount_point=self.mount
            )
        )
        return self._ref(user, agent, name, doc)

    def rotate(self, user: str, agent: str, name: str, value: str) -> SecretRef:
        path = self._secret_path(user, agent, name)
        old = self._read(path)
        if not old:
            raise ValueError(f"no secret {self.mount}/{path} to rotate")
        validate_secret(value, list(self._ref(user, agent, name, old).hosts))
        doc = {**old, "value": value}
        self._call(
            lambda c: c.secrets.kv.v2.create_or_update_secret(
                path=path, secret=doc, mount_point=self.mount
            )
        )
        return self._ref(user, agent, name, doc)

    def delete(self, user: str, agent: str, name: str) -> bool:
        path = self._secret_path(user, agent, name)
        if self._read(path) is None:
            return False
        self._call(
            lambda c: c.secrets.kv.v2.delete_metadata_and_all_versions(
                path=path, mount_point=self.mount
            )
        )
        return True

    def list(self) -> list[SecretRef]:
        refs: list[SecretRef] = []
        for user_dir in self._list_dirs(self.prefix):
            user = user_dir.rstrip("/")
            for agent_dir in self._list_dirs(f"{self.prefix}/{user}"):
                agent = agent_dir.rstrip("/")
                for ref, _ in self.load_agent(user, agent).values():
                    refs.append(ref)
        return sorted(refs, key=lambda r: (r.user, r.agent, r.name))

    def _list_dirs(self, path: str) -> builtins.list[str]:  # `list` is a method here
        try:
            resp = self._call(
                lambda c: c.secrets.kv.v2.list_secrets(path=path, mount_point=self.mount)
            )
        except hvac.exceptions.InvalidPath:
            return []
        return [k for k in resp["data"]["keys"] if k.endswith("/")]
