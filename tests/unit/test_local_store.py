from __future__ import annotations

import asyncio

import pytest

from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.secrets.local import MAGIC, LocalSecretStore
from egress.secrets.model import SecretValue, host_matches
from egress.secrets.placeholders import core_of

VALUE = "ghs_supersecretvalue1234567890"


def _store(tmp_path) -> LocalSecretStore:
    return LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key", create=True)


def test_put_encrypts_and_reads_back(tmp_path) -> None:
    store = _store(tmp_path)
    ref0 = store.put(
        "alice@example.com", "bot", "github", VALUE, ["api.github.com"], placeholder_prefix="ghp_"
    )
    assert ref0.placeholder.startswith("ghp_egph")
    blob = (tmp_path / "s.enc").read_bytes()
    assert blob.startswith(MAGIC) and VALUE.encode() not in blob
    assert (tmp_path / "s.key").stat().st_mode & 0o777 == 0o600
    again = LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key")
    owner = Identity("alice@example.com", "bot", "ns")
    ref = asyncio.run(again.lookup(owner, core_of(ref0.placeholder)))
    assert ref == ref0
    other = Identity("bob@example.com", "bot", "ns")
    assert asyncio.run(again.lookup(other, core_of(ref0.placeholder))) is None
    assert asyncio.run(again.value(ref)).reveal() == VALUE


def test_rotation_keeps_placeholder(tmp_path) -> None:
    store = _store(tmp_path)
    first = store.put("a@x", "bot", "k", "v1-aaaaaaaa", ["h.example"])
    second = store.put("a@x", "bot", "k", "v2-bbbbbbbb", ["h.example"])
    assert first.placeholder == second.placeholder
    assert asyncio.run(store.value(second)).reveal() == "v2-bbbbbbbb"


def test_tampering_detected(tmp_path) -> None:
    store = _store(tmp_path)
    store.put("a@x", "bot", "k", VALUE, ["h.example"])
    path = tmp_path / "s.enc"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(SecretStoreError) as e:
        LocalSecretStore.open(path, tmp_path / "s.key")
    assert e.value.reason == "secret_unavailable"
    assert "tampered" in str(e.value)
    assert VALUE not in str(e.value)


def test_wrong_key_detected(tmp_path, monkeypatch) -> None:
    _store(tmp_path).put("a@x", "bot", "k", VALUE, ["h.example"])
    import base64

    monkeypatch.setenv("EGRESS_SECRETS_KEY", base64.urlsafe_b64encode(b"\1" * 32).decode())
    with pytest.raises(SecretStoreError):
        LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key")


def test_delete_and_list_never_show_values(tmp_path) -> None:
    store = _store(tmp_path)
    store.put("a@x", "bot", "k", VALUE, ["h.example"])
    assert VALUE not in repr(store.list())
    assert store.delete("a@x", "bot", "k")
    assert store.list() == []
    assert not store.delete("a@x", "bot", "k")


def test_secret_value_never_prints() -> None:
    v = SecretValue(VALUE)
    assert VALUE not in repr(v) and VALUE not in str(v) and VALUE not in f"{v}"


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("api.github.com", "api.github.com", True),
        ("api.github.com", "API.GitHub.com.", True),
        ("*.github.com", "api.github.com", True),
        ("*.github.com", "github.com", False),
        ("*.github.com", "a.b.github.com", False),
        ("**.github.com", "a.b.github.com", True),
        ("**.github.com", "github.com", False),
        ("api.github.com", "api.github.com.evil.net", False),
        ("api.github.com", "evilapi.github.com", False),
    ],
)
def test_host_binding_globs(pattern: str, host: str, ok: bool) -> None:
    assert host_matches(pattern, host) is ok
