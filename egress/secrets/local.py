"""The embedded default secret store: one AES-256-GCM encrypted file, Vault-shaped paths inside.

File layout: ``MAGIC || nonce(12) || AES-GCM(key, nonce, json, aad=MAGIC)``. Any edit to the
file fails authentication and is reported as tampering, never silently ignored. The key comes
from ``EGRESS_SECRETS_KEY`` (urlsafe base64 of 32 bytes) or a key file created with mode 0600.
The proxy re-reads the file when it changes, so ``egress secrets put`` needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import os
import time
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from egress import reasons
from egress.errors import SecretStoreError
from egress.fileio import atomic_write
from egress.identity.model import Identity, validate_agent_name, validate_user
from egress.secrets.model import SecretRecord, SecretRef, SecretValue, secret_path, validate_secret
from egress.secrets.placeholders import core_of, mint_placeholder

MAGIC = b"EGRESS-SECRETS-v1\n"
KEY_ENV = "EGRESS_SECRETS_KEY"
_RECHECK_SECONDS = 1.0


def load_or_create_key(key_file: Path, *, create: bool) -> bytes:
    env = os.environ.get(KEY_ENV)
    if env:
        try:
            key = base64.urlsafe_b64decode(env.encode())
        except (binascii.Error, ValueError) as e:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"{KEY_ENV} is not base64") from e
        if len(key) != 32:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"{KEY_ENV} must hold 32 bytes")
        return key
    if key_file.exists():
        if key_file.stat().st_mode & 0o077:
            raise SecretStoreError(
                reasons.SECRET_UNAVAILABLE, f"{key_file} must be mode 0600 (chmod 600 {key_file})"
            )
        key = base64.urlsafe_b64decode(key_file.read_bytes().strip())
        if len(key) != 32:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"{key_file} must hold 32 bytes")
        return key
    if not create:
        raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"no key: {key_file} missing")
    key = AESGCM.generate_key(bit_length=256)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.urlsafe_b64encode(key) + b"\n")
    return key


class LocalSecretStore:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self._records: dict[str, SecretRecord] = {}
        self._every: tuple[tuple[str, str], ...] = ()
        self._every_of: dict[str, SecretRecord] | None = None
        self._by_core: dict[str, SecretRef] = {}
        # (user, agent) -> that agent's records: every answer asks for them (scrubbing), so
        # the lookup must not walk the whole store
        self._by_agent: dict[tuple[str, str], list[SecretRecord]] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._bound: dict[str, tuple[tuple[str, str], ...]] = {}
        self._bound_stamp: tuple[int, int] | None = None
        self._load()

    @classmethod
    def open(cls, path: Path, key_file: Path, *, create: bool = False) -> LocalSecretStore:
        return cls(path, load_or_create_key(key_file, create=create))

    # -- file ---------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._by_core, self._by_agent, self._stamp = {}, {}, {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        blob = self.path.read_bytes()
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 12 + 16:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"{self.path}: not a secret store")
        nonce = blob[len(MAGIC) : len(MAGIC) + 12]
        try:
            plain = self._aead.decrypt(nonce, blob[len(MAGIC) + 12 :], MAGIC)
        except InvalidTag as e:
            raise SecretStoreError(
                reasons.SECRET_UNAVAILABLE,
                f"{self.path}: authentication failed (tampered file or wrong key)",
            ) from e
        doc = orjson.loads(plain)
        records: dict[str, SecretRecord] = {}
        for path, r in doc.get("secrets", {}).items():
            ref = SecretRef(
                r["user"],
                r["agent"],
                r["name"],
                r["placeholder"],
                tuple(r["hosts"]),
                bool(r.get("allow_plaintext", False)),
            )
            records[path] = SecretRecord(
                ref, SecretValue(r["value"]), r.get("created", 0.0), dict(r.get("meta", {}))
            )
        self._records = records
        self._by_core = {core_of(rec.ref.placeholder): rec.ref for rec in records.values()}
        by_agent: dict[tuple[str, str], list[SecretRecord]] = {}
        for rec in records.values():
            by_agent.setdefault((rec.ref.user, rec.ref.agent), []).append(rec)
        self._by_agent = by_agent
        self._stamp = stamp

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            self._load()

    def _save(self) -> None:
        doc = {
            "version": 1,
            "secrets": {
                path: {
                    "user": rec.ref.user,
                    "agent": rec.ref.agent,
                    "name": rec.ref.name,
                    "placeholder": rec.ref.placeholder,
                    "hosts": list(rec.ref.hosts),
                    "allow_plaintext": rec.ref.allow_plaintext,
                    "value": rec.value.reveal(),
                    "created": rec.created,
                    "meta": rec.meta,
                }
                for path, rec in self._records.items()
            },
        }
        nonce = os.urandom(12)
        blob = MAGIC + nonce + self._aead.encrypt(nonce, orjson.dumps(doc), MAGIC)
        atomic_write(self.path, blob)
        self._stamp = None
        self._load()

    # -- SecretAdmin (CLI side) ---------------------------------------------------------------
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
        validate_user(user)
        validate_agent_name(agent)
        validate_agent_name(name)
        validate_secret(value, hosts, placeholder_prefix)
        self._load()
        path = secret_path(user, agent, name)
        old = self._records.get(path)
        # keep the agent's placeholder stable across updates: rotation must not break the agent
        placeholder = old.ref.placeholder if old else mint_placeholder(placeholder_prefix)
        ref = SecretRef(
            user, agent, name, placeholder, tuple(h.lower() for h in hosts), allow_plaintext
        )
        meta = dict(old.meta) if old else {}
        meta.update(hints or {})
        self._records[path] = SecretRecord(ref, SecretValue(value), time.time(), meta)
        self._save()
        return ref

    def rotate(self, user: str, agent: str, name: str, value: str) -> SecretRef:
        """New value, same placeholder and hosts: the agent notices nothing."""
        self._load()
        old = self._records.get(secret_path(user, agent, name))
        if old is None:
            raise ValueError(f"no secret {secret_path(user, agent, name)} to rotate")
        return self.put(
            user,
            agent,
            name,
            value,
            list(old.ref.hosts),
            hints=old.meta,
            allow_plaintext=old.ref.allow_plaintext,
        )

    def delete(self, user: str, agent: str, name: str) -> bool:
        self._load()
        if self._records.pop(secret_path(user, agent, name), None) is None:
            return False
        self._save()
        return True

    def list(self) -> list[SecretRef]:
        self._load()
        return sorted(
            (r.ref for r in self._records.values()), key=lambda r: (r.user, r.agent, r.name)
        )

    def location(self, user: str, agent: str, name: str) -> str:
        return secret_path(user, agent, name)

    # -- SecretStore (proxy side) -------------------------------------------------------------
    async def lookup(self, identity: Identity, placeholder_core: str) -> SecretRef | None:
        self._refresh()
        ref = self._by_core.get(placeholder_core)
        return ref if ref is not None and ref.owned_by(identity) else None

    async def by_name(self, identity: Identity, name: str) -> tuple[SecretRef, SecretValue] | None:
        self._refresh()
        rec = self._records.get(secret_path(identity.user, identity.agent, name))
        return (rec.ref, rec.value) if rec is not None else None

    def every_value(self) -> tuple[tuple[str, str], ...]:
        """(value, placeholder) of every secret, as last loaded. No file check: the decision
        log's writer thread calls it (the event loop's reads keep the records current)."""
        records = self._records
        if self._every_of is not records:
            self._every = tuple(
                sorted((rec.value.reveal(), rec.ref.placeholder) for rec in records.values())
            )
            self._every_of = records
        return self._every

    def bound_to(self, host: str) -> tuple[tuple[str, str], ...]:
        """(value, placeholder) of every agent's secret whose binding admits ``host``: what
        any agent's answer from that host is scrubbed of (a value one agent stored there can
        be read back by another). Cached per host until the file changes."""
        self._refresh()
        if self._bound_stamp != self._stamp:
            self._bound, self._bound_stamp = {}, self._stamp
        host = host.lower()
        found = self._bound.get(host)
        if found is None:
            found = self._bound[host] = tuple(
                (rec.value.reveal(), rec.ref.placeholder)
                for rec in self._records.values()
                if rec.ref.admits_host(host)
            )
        return found

    async def agent_secrets(
        self, identity: Identity
    ) -> builtins.list[tuple[SecretRef, SecretValue]]:  # `list` is a method here
        self._refresh()
        return [
            (rec.ref, rec.value) for rec in self._by_agent.get((identity.user, identity.agent), ())
        ]

    async def value(self, ref: SecretRef) -> SecretValue:
        self._refresh()
        rec = self._records.get(secret_path(ref.user, ref.agent, ref.name))
        if rec is None or rec.ref.placeholder != ref.placeholder:
            raise SecretStoreError(reasons.SECRET_UNAVAILABLE, f"secret {ref.name!r} is gone")
        return rec.value
