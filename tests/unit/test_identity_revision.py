"""The identities revision: what per-request identity checks compare, on a real file."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress.identity.credentials import IdentitiesFile, hash_token


def _pair(tmp_path: Path) -> tuple[IdentitiesFile, IdentitiesFile, str]:
    path = tmp_path / "identities.json"
    cli = IdentitiesFile(path)  # what `egress agents ...` writes with
    _, token = cli.add("alice@example.com", "bot")
    return cli, IdentitiesFile(path), token  # the proxy's own reader


@pytest.mark.parametrize("change", ["revoke", "reissue", "add-other", "delete-file"])
def test_revision_moves_with_every_change(tmp_path: Path, change: str) -> None:
    cli, proxy, token = _pair(tmp_path)
    before = proxy.refresh()
    assert proxy.still_valid("bot", hash_token(token)) is not None
    if change == "revoke":
        cli.revoke("alice@example.com", "bot")
    elif change == "reissue":
        cli.add("alice@example.com", "bot")
    elif change == "add-other":
        cli.add("bob@example.com", "bot")
    else:
        cli.path.unlink()
    assert proxy.refresh() > before
    still = proxy.still_valid("bot", hash_token(token))
    assert (still is not None) == (change == "add-other")


def test_revision_stays_when_nothing_changed(tmp_path: Path) -> None:
    cli, proxy, _ = _pair(tmp_path)
    before = proxy.refresh()
    cli.path.write_bytes(cli.path.read_bytes())  # rewritten, same records
    assert proxy.refresh() == before


@pytest.mark.parametrize("garbage", [b"{not json", b'{"agents": [{"user": 1}]}'])
def test_unreadable_file_keeps_the_last_records(tmp_path: Path, garbage: bytes) -> None:
    cli, proxy, token = _pair(tmp_path)
    before = proxy.refresh()
    cli.path.write_bytes(garbage)
    assert proxy.refresh() == before
    assert proxy.still_valid("bot", hash_token(token)) is not None


def test_still_valid_needs_the_matching_agent_name(tmp_path: Path) -> None:
    _, proxy, token = _pair(tmp_path)
    assert proxy.still_valid("other-bot", hash_token(token)) is None
    assert proxy.still_valid("bot", hash_token(token + "x")) is None
