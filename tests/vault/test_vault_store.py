"""The Vault secret store against a real OpenBao server (bin/bao, Vault-compatible KV v2).

Covers: the Vault-shaped layout, per-agent placeholder index and its TTL, rotation without
restart, token/AppRole auth with renewal and re-login, and failing closed when the server is
down, paused past the timeout, or refuses (403).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import hvac
import pytest

from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.secrets.placeholders import core_of
from egress.secrets.vault import VaultSecretStore
from egress.secrets.vault_auth import AppRoleAuth, TokenAuth, VaultSession
from tests.support.openbao import BaoServer, start_bao

ALICE = Identity("alice@example.com", "triage-bot", "ns")
BOB = Identity("bob@example.com", "triage-bot", "ns")
VALUE = "ghs_vault_real_value_0123456789"


@pytest.fixture(scope="module")
def bao() -> Iterator[BaoServer]:
    server = start_bao()
    yield server
    server.stop()


def _store(bao: BaoServer, **kw) -> VaultSecretStore:
    return VaultSecretStore(VaultSession(bao.url, TokenAuth(bao.token), timeout=1.0), **kw)


def test_put_writes_vault_layout_and_lookup_is_per_agent(bao: BaoServer) -> None:
    store = _store(bao)
    ref = store.put(
        "alice@example.com",
        "triage-bot",
        "github",
        VALUE,
        ["api.github.com"],
        placeholder_prefix="ghp_",
    )
    raw = hvac.Client(bao.url, token=bao.token).secrets.kv.v2.read_secret_version(
        path="proxy-secrets/alice@example.com/triage-bot/github",
        mount_point="kv",
        raise_on_deleted_version=True,
    )["data"]["data"]
    assert raw == {"value": VALUE, "placeholder": ref.placeholder, "hosts": ["api.github.com"]}
    assert ref.placeholder.startswith("ghp_egph")
    core = core_of(ref.placeholder)
    assert asyncio.run(store.lookup(ALICE, core)) == ref
    assert asyncio.run(store.value(ref)).reveal() == VALUE
    # bob's agent has the same name; alice's placeholder is simply unknown to him
    assert asyncio.run(store.lookup(BOB, core)) is None
    assert VALUE not in repr(store.list())


def test_rotation_takes_effect_within_ttl(bao: BaoServer) -> None:
    store = _store(bao, ttl=0.5)
    cli = _store(bao)
    ref = cli.put("alice@example.com", "triage-bot", "rotating", "old-value-1234567", ["h.example"])

    async def value_now() -> str:
        found = await store.lookup(ALICE, core_of(ref.placeholder))
        assert found is not None
        return (await store.value(found)).reveal()

    assert asyncio.run(value_now()) == "old-value-1234567"
    rotated = cli.rotate("alice@example.com", "triage-bot", "rotating", "new-value-7654321")
    assert rotated.placeholder == ref.placeholder  # the agent keeps its placeholder
    time.sleep(0.6)
    assert asyncio.run(value_now()) == "new-value-7654321"


def test_delete_and_missing(bao: BaoServer) -> None:
    store = _store(bao, ttl=0)
    ref = store.put("alice@example.com", "triage-bot", "temp", "temp-value-12345678", ["h.example"])
    assert store.delete("alice@example.com", "triage-bot", "temp")
    assert not store.delete("alice@example.com", "triage-bot", "temp")
    assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) is None


def test_entries_without_placeholder_are_never_swappable(bao: BaoServer) -> None:
    admin = hvac.Client(bao.url, token=bao.token)
    admin.secrets.kv.v2.create_or_update_secret(
        path="proxy-secrets/alice@example.com/triage-bot/half",
        mount_point="kv",
        secret={"value": "no-placeholder-value"},
    )
    index = _store(bao).load_agent("alice@example.com", "triage-bot")
    assert all(ref.name != "half" for ref, _ in index.values())


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(None, False), (True, True), ("true", True), (False, False), ("yes", False), (1, False)],
)
def test_allow_plaintext_is_read_strictly(bao: BaoServer, stored, expected: bool) -> None:
    """Only an explicit true (egress's bool, or the string `vault kv put` stores) lets a
    secret travel over plain http; anything else, or nothing, keeps it refused."""
    admin = hvac.Client(bao.url, token=bao.token)
    doc = {"value": "pt-value-0123456789", "placeholder": "egph" + "P" * 40, "hosts": ["h"]}
    if stored is not None:
        doc["allow_plaintext"] = stored
    admin.secrets.kv.v2.create_or_update_secret(
        path="proxy-secrets/pt@example.com/pt-bot/legacy", mount_point="kv", secret=doc
    )
    index = _store(bao).load_agent("pt@example.com", "pt-bot")
    assert [ref.allow_plaintext for ref, _ in index.values()] == [expected]


def test_put_allow_plaintext_round_trips(bao: BaoServer) -> None:
    store = _store(bao)
    ref = store.put(
        "pt@example.com", "pt-bot", "flagged", "v-0123456789", ["h"], allow_plaintext=True
    )
    assert ref.allow_plaintext
    assert store.rotate("pt@example.com", "pt-bot", "flagged", "v2-0123456789").allow_plaintext
    assert any(r.name == "flagged" and r.allow_plaintext for r in store.list())
    assert not store.put(
        "pt@example.com", "pt-bot", "flagged", "v3-0123456789", ["h"]
    ).allow_plaintext


def _approle(bao: BaoServer, token_ttl: str) -> tuple[str, str]:
    admin = hvac.Client(bao.url, token=bao.token)
    if "approle/" not in admin.sys.list_auth_methods():
        admin.sys.enable_auth_method("approle")
    admin.sys.create_or_update_policy(
        "egress-proxy",
        """
path "kv/data/proxy-secrets/*" { capabilities = ["read"] }
path "kv/metadata/proxy-secrets/*" { capabilities = ["list", "read"] }
""",
    )
    admin.auth.approle.create_or_update_approle(
        "egress", token_policies=["egress-proxy"], token_ttl=token_ttl, token_max_ttl="1h"
    )
    role_id = admin.auth.approle.read_role_id("egress")["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id("egress")["data"]["secret_id"]
    return role_id, secret_id


def test_approle_login_and_relogin_after_expiry(bao: BaoServer) -> None:
    role_id, secret_id = _approle(bao, "2s")
    session = VaultSession(bao.url, AppRoleAuth(role_id, secret_id), timeout=1.0)
    store = VaultSecretStore(session, ttl=0)
    ref = _store(bao).put(
        "alice@example.com", "triage-bot", "approle", "approle-value-123", ["h.example"]
    )
    assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) == ref
    assert session.logins == 1
    time.sleep(2.3)  # token expired
    assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) == ref
    assert session.logins == 2


def test_renewable_token_is_renewed(bao: BaoServer) -> None:
    role_id, secret_id = _approle(bao, "6s")
    session = VaultSession(bao.url, AppRoleAuth(role_id, secret_id), timeout=1.0)
    session.ensure()
    time.sleep(4.3)  # less than a third of the TTL left
    session.ensure()
    assert session.renewals == 1 and session.logins == 1


def test_policy_scoped_token_cannot_read_agent_secrets(bao: BaoServer) -> None:
    role_id, secret_id = _approle(bao, "1h")
    admin = hvac.Client(bao.url, token=bao.token)
    admin.secrets.kv.v2.create_or_update_secret(
        path="agents/alice@example.com/triage-bot/readable",
        mount_point="kv",
        secret={"value": "agent-readable"},
    )
    session = VaultSession(bao.url, AppRoleAuth(role_id, secret_id), timeout=1.0)
    with pytest.raises(hvac.exceptions.Forbidden):
        session.ensure().secrets.kv.v2.read_secret_version(
            path="agents/alice@example.com/triage-bot/readable",
            mount_point="kv",
            raise_on_deleted_version=True,
        )


def test_forbidden_token_fails_closed(bao: BaoServer) -> None:
    admin = hvac.Client(bao.url, token=bao.token)
    weak = admin.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    store = VaultSecretStore(VaultSession(bao.url, TokenAuth(weak), timeout=1.0), ttl=0)
    with pytest.raises(SecretStoreError) as e:
        asyncio.run(store.lookup(ALICE, "egph" + "x" * 40))
    assert e.value.reason == "secret_unavailable"


def test_expired_static_token_fails_closed(bao: BaoServer) -> None:
    admin = hvac.Client(bao.url, token=bao.token)
    short = admin.auth.token.create(policies=["root"], ttl="1s", renewable=False)
    store = VaultSecretStore(
        VaultSession(bao.url, TokenAuth(short["auth"]["client_token"]), timeout=1.0), ttl=0
    )
    asyncio.run(store.lookup(ALICE, "egph" + "y" * 40))
    time.sleep(1.3)
    with pytest.raises(SecretStoreError) as e:
        asyncio.run(store.lookup(ALICE, "egph" + "y" * 40))
    assert e.value.reason == "secret_unavailable"


@pytest.fixture
def own_bao() -> Iterator[BaoServer]:
    server = start_bao()
    yield server
    server.stop()


def test_down_and_paused_fail_closed_then_recover(own_bao: BaoServer) -> None:
    store = VaultSecretStore(
        VaultSession(own_bao.url, TokenAuth(own_bao.token), timeout=0.5), ttl=0, timeout=0.5
    )
    ref = store.put("alice@example.com", "triage-bot", "k", "value-for-faults-123", ["h.example"])
    core = core_of(ref.placeholder)
    assert asyncio.run(store.lookup(ALICE, core)) == ref
    own_bao.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SecretStoreError) as e:
            asyncio.run(store.lookup(ALICE, core))
        assert e.value.reason == "secret_unavailable"
        assert time.monotonic() - started < 3.0  # bounded by the timeout, not hung
    finally:
        own_bao.resume()
    assert asyncio.run(store.lookup(ALICE, core)) == ref
    own_bao.kill()
    with pytest.raises(SecretStoreError):
        asyncio.run(store.lookup(ALICE, core))
    with pytest.raises(httpx.HTTPError):
        httpx.get(own_bao.url + "/v1/sys/health", timeout=0.5)
