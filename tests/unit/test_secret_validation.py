"""What a secret store refuses to store (red-team L10): a placeholder prefix that repeats the
value (the agent is shown the placeholder), values with control characters or that are not
UTF-8 (a traceback before), host bindings that are not hosts. Through the real CLI and the
local store; the Vault store calls the same validation (tests/vault)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from egress.secrets.local import LocalSecretStore

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "hosts", "prefix", "why"),
    [
        ("PIN-4711-abcdef", ["localhost"], "PIN-4711-abcdef_", "prefix"),
        ("sk-live-12345678", ["localhost"], "e-12345678", "prefix"),
        ("short", ["localhost"], "short_", "prefix"),
        ("abc\x01def", ["localhost"], "", "control"),
        ("abc\x7fdef", ["localhost"], "", "control"),
        ("abc\udcffdef", ["localhost"], "", "control"),
        ("goodvalue123", ["bad host"], "", "host"),
        ("goodvalue123", ["api.example.com/path"], "", "host"),
        ("goodvalue123", ["user@host"], "", "host"),
    ],
)
def test_refused(tmp_path: Path, value: str, hosts: list[str], prefix: str, why: str) -> None:
    store = LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key", create=True)
    with pytest.raises(ValueError):
        store.put("a@x.com", "bot", "n", value, hosts, placeholder_prefix=prefix)
    assert store.list() == []


@pytest.mark.parametrize(
    ("value", "hosts", "prefix"),
    [
        ("ghp_realvalue1234567890", ["api.github.com"], "ghp_"),  # the usual marker
        ("sk-proj-abcdefgh", ["*.openai.com", "**.example.com"], "sk-"),
        ("tok", ["127.0.0.1", "[::1]", "localhost."], ""),
        ("é-unicode-value", ["localhost"], ""),
    ],
)
def test_accepted(tmp_path: Path, value: str, hosts: list[str], prefix: str) -> None:
    store = LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key", create=True)
    ref = store.put("a@x.com", "bot", "n", value, hosts, placeholder_prefix=prefix)
    assert ref.placeholder.startswith(prefix) and value not in ref.placeholder


def test_cli_non_utf8_value_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "egress", "secrets", "put", "--state-dir", str(tmp_path),
         "--user", "a@x.com", "--agent", "bot", "--name", "n", "--hosts", "localhost"],
        input=b"\xff\xfeabc", capture_output=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.decode().startswith("error[")
    assert b"Traceback" not in out.stderr
