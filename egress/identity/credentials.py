"""Proxy credentials: ``Proxy-Authorization: Basic base64(agent:token)`` checked against a file.

The embedded default keeps identities in a JSON file holding only SHA-256 hashes of tokens.
Tokens are 256-bit random values, so a fast hash is enough: there is nothing to brute-force,
and lookups stay O(1) on the hot path. The file is re-read when it changes, so
``egress agents add/revoke`` take effect without a restart.

Every change of the loaded records bumps ``revision``. A connection remembers the revision at
which its credential was last verified; a request on it re-checks the credential only when the
revision moved, so per-request identity costs one integer comparison.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from egress import reasons
from egress.errors import IdentityError
from egress.fileio import atomic_write
from egress.identity.model import Identity, default_namespace, validate_agent_name, validate_user

TOKEN_PREFIX = "egt_"  # noqa: S105 (a prefix, not a password)
_RECHECK_SECONDS = 1.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_proxy_authorization(value: str | None) -> tuple[str, str]:
    """Return (username, token) from a Proxy-Authorization header value."""
    if value is None or not value.strip():
        raise IdentityError(reasons.CREDENTIAL_MISSING, "proxy credential required")
    scheme, _, param = value.strip().partition(" ")
    if scheme.lower() != "basic" or not param.strip():
        raise IdentityError(reasons.CREDENTIAL_MALFORMED, "expected Basic proxy credential")
    try:
        decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise IdentityError(reasons.CREDENTIAL_MALFORMED, "credential is not valid base64") from e
    username, sep, token = decoded.partition(":")
    if not sep or not username or not token:
        raise IdentityError(reasons.CREDENTIAL_MALFORMED, "expected agent:token")
    return username, token


@dataclass(frozen=True, slots=True)
class AgentRecord:
    user: str
    agent: str
    namespace: str
    token_sha256: str
    created: float

    def identity(self) -> Identity:
        return Identity(self.user, self.agent, self.namespace)


class IdentitiesFile:
    """The local identity source: add/revoke/list agents and verify presented tokens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fspath = os.fspath(path)
        self._by_hash: dict[str, AgentRecord] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.revision = 0  # bumped whenever the loaded records change
        self._load()

    # -- reading --------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            st = os.stat(self._fspath)  # on every request in a tunnel: no Path overhead
        except FileNotFoundError:
            if self._by_hash:
                self.revision += 1
            self._by_hash, self._stamp = {}, None
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        doc = orjson.loads(self.path.read_bytes() or b"{}")
        records = [AgentRecord(**r) for r in doc.get("agents", [])]
        by_hash = {r.token_sha256: r for r in records}
        if by_hash != self._by_hash:
            self.revision += 1
        self._by_hash = by_hash
        self._stamp = stamp

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked >= _RECHECK_SECONDS:
            self._checked = now
            self._load()

    def refresh(self) -> int:
        """Re-read the file now if it changed (one stat when it did not); the revision.

        A file caught half-written or unparseable keeps the records last loaded: a failed read
        must neither admit nor drop anyone until the next good one."""
        self._checked = time.monotonic()
        with contextlib.suppress(OSError, ValueError, TypeError):
            self._load()
        return self.revision

    def maybe_refresh(self) -> int:
        """``refresh`` at most once a second: cheap enough for every request."""
        self._maybe_reload()
        return self.revision

    def still_valid(self, username: str, token_sha256: str) -> Identity | None:
        """The identity a credential proved earlier still proves now, or None if revoked.
        Takes the token's hash: connections keep the hash, never the token."""
        record = self._by_hash.get(token_sha256)
        if record is None or not hmac.compare_digest(record.agent, username):
            return None
        return record.identity()

    def records(self) -> list[AgentRecord]:
        self._load()
        return sorted(self._by_hash.values(), key=lambda r: (r.user, r.agent, r.created))

    def verify(self, username: str, token: str) -> Identity:
        """The identity a (username, token) pair proves, or IdentityError (-> 407)."""
        self._maybe_reload()
        record = self._by_hash.get(hash_token(token))
        # compare_digest on the name too: no early exit that tells which half was wrong
        if record is None or not hmac.compare_digest(record.agent, username):
            raise IdentityError(reasons.CREDENTIAL_INVALID, "unknown or revoked proxy credential")
        return record.identity()

    def verify_token(self, token: str) -> Identity:
        """The identity a bare token proves (the LLM gateway takes it as an API key)."""
        self._maybe_reload()
        record = self._by_hash.get(hash_token(token))
        if record is None:
            raise IdentityError(reasons.CREDENTIAL_INVALID, "unknown or revoked credential")
        return record.identity()

    def by_service_account(self, namespace: str, name: str) -> Identity | None:
        """The registered agent running as this Kubernetes service account, if any."""
        self._maybe_reload()
        for r in self._by_hash.values():
            if r.namespace == namespace and r.agent == name:
                return r.identity()
        return None

    # -- writing (CLI) ----------------------------------------------------------------------
    def _write(self, records: list[AgentRecord]) -> None:
        doc = {"version": 1, "agents": [_as_dict(r) for r in records]}
        atomic_write(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        self._stamp = None
        self._load()

    def add(self, user: str, agent: str, namespace: str | None = None) -> tuple[Identity, str]:
        """Register (or re-issue) an agent; returns its identity and the new plaintext token."""
        validate_user(user)
        validate_agent_name(agent)
        token = new_token()
        records = [r for r in self.records() if not (r.user == user and r.agent == agent)]
        record = AgentRecord(
            user=user,
            agent=agent,
            namespace=namespace or default_namespace(user, agent),
            token_sha256=hash_token(token),
            created=time.time(),
        )
        self._write([*records, record])
        return record.identity(), token

    def revoke(self, user: str, agent: str) -> bool:
        records = self.records()
        kept = [r for r in records if not (r.user == user and r.agent == agent)]
        if len(kept) == len(records):
            return False
        self._write(kept)
        return True


def _as_dict(r: AgentRecord) -> dict[str, object]:
    return {
        "user": r.user,
        "agent": r.agent,
        "namespace": r.namespace,
        "token_sha256": r.token_sha256,
        "created": r.created,
    }
