from __future__ import annotations

import base64

import pytest

from egress.errors import IdentityError
from egress.identity.credentials import IdentitiesFile, parse_proxy_authorization


def b(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "credential_missing"),
        ("   ", "credential_missing"),
        ("Bearer abc", "credential_malformed"),
        ("Basic", "credential_malformed"),
        ("Basic ***", "credential_malformed"),
        (b("nocolon"), "credential_malformed"),
        (b(":tokenonly"), "credential_malformed"),
        (b("agent:"), "credential_malformed"),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "credential_malformed"),
    ],
)
def test_parse_rejects(value: str | None, reason: str) -> None:
    with pytest.raises(IdentityError) as e:
        parse_proxy_authorization(value)
    assert e.value.reason == reason


def test_parse_accepts_token_with_colons() -> None:
    assert parse_proxy_authorization(b("bot:egt_a:b")) == ("bot", "egt_a:b")
    assert parse_proxy_authorization("basic " + b("bot:t")[6:]) == ("bot", "t")


def test_add_verify_revoke(tmp_path) -> None:
    ids = IdentitiesFile(tmp_path / "ids.json")
    identity, token = ids.add("alice@example.com", "triage-bot")
    assert identity.user == "alice@example.com"  # raw owner kept
    assert identity.namespace.startswith("agent-triage-bot-alice-example-com-")
    assert ids.verify("triage-bot", token) == identity
    raw = (tmp_path / "ids.json").read_text()
    assert token not in raw  # only the hash is stored
    assert (tmp_path / "ids.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(IdentityError):
        ids.verify("other-bot", token)
    with pytest.raises(IdentityError):
        ids.verify("triage-bot", token + "x")
    assert ids.revoke("alice@example.com", "triage-bot")
    with pytest.raises(IdentityError):
        ids.verify("triage-bot", token)


def test_reissue_replaces_old_token(tmp_path) -> None:
    ids = IdentitiesFile(tmp_path / "ids.json")
    _, old = ids.add("alice@example.com", "bot")
    _, new = ids.add("alice@example.com", "bot")
    assert ids.verify("bot", new)
    with pytest.raises(IdentityError):
        ids.verify("bot", old)


def test_changes_by_another_process_are_picked_up(tmp_path) -> None:
    path = tmp_path / "ids.json"
    reader = IdentitiesFile(path)
    _, token = IdentitiesFile(path).add("bob@example.com", "bot")
    reader._checked = 0.0  # skip the 1 s re-check interval
    assert reader.verify("bot", token).user == "bob@example.com"


@pytest.mark.parametrize("user", ["", "a/b", "a b", "x\n", "..", "a\\b"])
def test_invalid_users_refused(tmp_path, user: str) -> None:
    with pytest.raises(ValueError):
        IdentitiesFile(tmp_path / "i.json").add(user, "bot")


@pytest.mark.parametrize("agent", ["", "Bot", "bot/x", "-bot", "a" * 64, "bot:x"])
def test_invalid_agent_names_refused(tmp_path, agent: str) -> None:
    with pytest.raises(ValueError):
        IdentitiesFile(tmp_path / "i.json").add("alice@example.com", agent)
