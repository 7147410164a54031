"""The CLI as a user runs it: subprocesses, real files, exit codes and messages."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def egress(*args: str, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run(
        [sys.executable, "-m", "egress", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=60,
    )


def test_ca_init_prints_path_and_fingerprint(tmp_path) -> None:
    out = egress("ca", "init", "--dir", str(tmp_path / "certs"))
    assert out.returncode == 0, out.stderr
    assert "mitmproxy-ca-cert.pem" in out.stdout
    assert "fingerprint:    SHA256 " in out.stdout and "ECDSA secp256r1" in out.stdout
    again = egress("ca", "init", "--dir", str(tmp_path / "certs"))
    assert again.returncode == 2
    assert again.stderr.startswith("error[ca_exists]:")
    assert "Traceback" not in again.stderr


def test_agents_add_prints_proxy_url(tmp_path) -> None:
    out = egress(
        "agents",
        "add",
        "--user",
        "alice@example.com",
        "--agent",
        "triage-bot",
        "--state-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip().splitlines()[-1]
    assert url.startswith("http://triage-bot:egt_") and url.endswith("@127.0.0.1:8080")
    token = url.split(":")[2].split("@")[0]
    assert token not in (tmp_path / "identities.json").read_text()
    listed = egress("agents", "list", "--state-dir", str(tmp_path))
    assert "alice@example.com\ttriage-bot" in listed.stdout
    bad = egress("agents", "add", "--user", "a/b", "--agent", "x", "--state-dir", str(tmp_path))
    assert bad.returncode == 2 and bad.stderr.startswith("error[invalid_argument]")


def test_secrets_put_reads_stdin_and_never_lists_values(tmp_path) -> None:
    value = "ghs_cli_secret_value_123456789"
    out = egress(
        "secrets",
        "put",
        "--user",
        "alice@example.com",
        "--agent",
        "triage-bot",
        "--name",
        "github",
        "--hosts",
        "api.github.com",
        "--placeholder-prefix",
        "ghp_",
        "--state-dir",
        str(tmp_path),
        stdin=value + "\n",
    )
    assert out.returncode == 0, out.stderr
    assert "kv/proxy-secrets/alice@example.com/triage-bot/github" in out.stdout
    placeholder = out.stdout.strip().splitlines()[-1]
    assert placeholder.startswith("ghp_egph")
    assert value not in out.stdout
    listed = egress("secrets", "list", "--state-dir", str(tmp_path))
    assert placeholder in listed.stdout and value not in listed.stdout
    assert value.encode() not in (tmp_path / "secrets.enc").read_bytes()
    empty = egress(
        "secrets",
        "put",
        "--user",
        "a@x",
        "--agent",
        "b",
        "--name",
        "n",
        "--hosts",
        "h",
        "--state-dir",
        str(tmp_path),
        stdin="",
    )
    assert empty.returncode == 2 and "error[secret_invalid]" in empty.stderr


def test_secrets_rotate_keeps_placeholder_and_hints(tmp_path) -> None:
    args = ["--user", "alice@example.com", "--agent", "bot", "--name", "api"]
    put = egress(
        "secrets",
        "put",
        *args,
        "--hosts",
        "api.example.com",
        "--header",
        "X-Api-Key",
        "--format",
        "{placeholder}",
        "--state-dir",
        str(tmp_path),
        stdin="first-value-123456\n",
    )
    assert put.returncode == 0, put.stderr
    placeholder = put.stdout.strip().splitlines()[-1]
    assert f"agent sends it as: X-Api-Key: {placeholder}" in put.stdout
    rot = egress(
        "secrets", "rotate", *args, "--state-dir", str(tmp_path), stdin="second-value-654321\n"
    )
    assert rot.returncode == 0, rot.stderr
    assert placeholder in rot.stdout and "second-value" not in rot.stdout
    from egress.secrets.local import LocalSecretStore

    store = LocalSecretStore.open(tmp_path / "secrets.enc", tmp_path / "secrets.key")
    (record,) = store._records.values()
    assert record.value.reveal() == "second-value-654321"
    assert record.ref.placeholder == placeholder
    assert record.meta == {"header": "X-Api-Key", "format": "{placeholder}"}
    missing = egress(
        "secrets",
        "rotate",
        "--user",
        "a@x",
        "--agent",
        "b",
        "--name",
        "n",
        "--state-dir",
        str(tmp_path),
        stdin="v-123456789\n",
    )
    assert missing.returncode == 2 and "no secret" in missing.stderr


def test_serve_help_documents_flags_and_env() -> None:
    out = egress("serve", "--help")
    for flag, env in [
        ("--listen", "EGRESS_LISTEN"),
        ("--policy-dir", "EGRESS_POLICY_DIR"),
        ("--data-file", "EGRESS_DATA_FILE"),
        ("--identities", "EGRESS_IDENTITIES"),
        ("--secrets-file", "EGRESS_SECRETS_FILE"),
        ("--ca-dir", "EGRESS_CA_DIR"),
        ("--decision-log", "EGRESS_DECISION_LOG"),
        ("--upstream-ca", "EGRESS_UPSTREAM_CA"),
        ("--opa-url", "EGRESS_OPA_URL"),
    ]:
        assert flag in out.stdout and env in out.stdout


def test_serve_without_ca_is_a_clear_error(tmp_path) -> None:
    out = egress(
        "serve",
        "--ca-dir",
        str(tmp_path / "none"),
        "--state-dir",
        str(tmp_path),
        "--listen",
        "127.0.0.1:0",
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error[ca_missing]:") and "egress ca init" in out.stderr


def test_secrets_put_allow_plaintext_is_stored_and_listed(tmp_path) -> None:
    def put(name: str, *flags: str):
        return egress(
            "secrets",
            "put",
            "--user",
            "alice@example.com",
            "--agent",
            "triage-bot",
            "--name",
            name,
            "--hosts",
            "intranet.example",
            *flags,
            "--state-dir",
            str(tmp_path),
            stdin="plain-ok-value-123\n",
        )

    loose = put("legacy", "--allow-plaintext")
    assert loose.returncode == 0 and "plain http" in loose.stdout
    strict = put("strict")
    assert strict.returncode == 0 and "plain http" not in strict.stdout
    rows = egress("secrets", "list", "--state-dir", str(tmp_path)).stdout.splitlines()
    by_name = {row.split("\t")[0].rsplit("/", 1)[1]: row for row in rows}
    assert by_name["legacy"].endswith("\tallow_plaintext=yes")
    assert "allow_plaintext" not in by_name["strict"]
    # rotation keeps the choice; a put without the flag withdraws it
    assert egress(
        "secrets", "rotate", "--user", "alice@example.com", "--agent", "triage-bot",
        "--name", "legacy", "--state-dir", str(tmp_path), stdin="new-value-456\n",
    ).returncode == 0  # fmt: skip
    rows = egress("secrets", "list", "--state-dir", str(tmp_path)).stdout
    assert "legacy\t" in rows and "allow_plaintext=yes" in rows
    assert put("legacy").returncode == 0
    assert "allow_plaintext" not in egress("secrets", "list", "--state-dir", str(tmp_path)).stdout


def test_piping_into_a_reader_that_stops_is_not_a_traceback(tmp_path) -> None:
    """`egress logs query ... | head -c 10`: the reader closes the pipe early (red team F9)."""
    import asyncio
    import subprocess
    import sys

    from egress.audit import DecisionLogWriter
    from egress.audit.events import event_result, make_event, utc_timestamp

    log = tmp_path / "decisions.log"

    async def write() -> None:
        w = DecisionLogWriter(log)
        await w.start()
        for i in range(3000):
            w.submit(
                make_event(
                    decision_id=f"d-{i}",
                    timestamp=utc_timestamp(1_800_000_000 + i),
                    kind="request",
                    agent={"user": "a@x.com", "name": "bot", "namespace": "default"},
                    policy_input=None,
                    request={
                        "method": "GET",
                        "scheme": "https",
                        "host": "h.example",
                        "port": 443,
                        "path": f"/p/{i}" + "x" * 200,
                        "http_version": "1.1",
                    },
                    result=event_result(None, allow=True, reason="allowed"),
                    secrets=[],
                    status=200,
                    bytes_in=0,
                    bytes_out=0,
                    decision_ms=None,
                    total_ms=None,
                    error=None,
                    labels={"proxy_id": "p", "version": "0", "component": "proxy"},
                )
            )
        await w.close()

    asyncio.run(write())
    cmd = f"{sys.executable} -m egress logs query {log} --json | head -c 10 >/dev/null"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=120)
    assert b"Traceback" not in out.stderr, out.stderr[-2000:]


HEAVY = ("uvicorn", "starlette", "httpx", "mitmproxy", "kopf")


def _modules_after(argv: list[str], cwd: Path) -> set[str]:
    """Run ``egress <argv>`` in a fresh interpreter; the heavy modules it imported."""
    code = (
        "import contextlib, io, sys\n"
        "from egress.cli.main import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return {m for m in out.stdout.strip().split(",") if m}


def test_light_commands_import_no_server_library(tmp_path) -> None:
    """`egress --help`, `egress logs --help`, `egress agents list` start without the gateway's,
    the proxy's or the operator's libraries: each command imports only what it runs."""
    for argv in (
        ["--help"],
        ["logs", "--help"],
        ["policy", "--help"],
        ["agents", "list", "--state-dir", str(tmp_path)],
        ["secrets", "list", "--state-dir", str(tmp_path)],
        ["ca", "show", "--dir", str(tmp_path / "none")],
    ):
        assert _modules_after(argv, tmp_path) == set(), argv


def test_gateway_help_is_light_but_running_it_loads_its_server(tmp_path) -> None:
    assert _modules_after(["gateway", "--help"], tmp_path) == set()
    # the check above would pass vacuously if the names were wrong: running the gateway (here
    # with a routes file that does not exist, so it stops at once) loads them
    missing = str(tmp_path / "no-routes.json")
    assert {"uvicorn", "httpx"} <= _modules_after(["gateway", "--config", missing], tmp_path)


def test_lazy_parser_help_equals_full_parser_help() -> None:
    """Building only the chosen command changes nothing a user sees: every command's help is the
    same as from the parser with every command built."""
    from egress.cli.main import COMMANDS, build_parser

    full = build_parser()
    names = list(COMMANDS)
    assert full.format_help() == build_parser(["--help"]).format_help()
    subs = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    for name in names:
        lazy = build_parser([name, "--help"])
        lazy_subs = next(a for a in lazy._actions if isinstance(a, argparse._SubParsersAction))
        assert lazy_subs.choices[name].format_help() == subs.choices[name].format_help(), name


def test_chosen_command_is_the_first_word() -> None:
    from egress.cli.main import _chosen

    assert _chosen(["--help"]) is None
    assert _chosen([]) is None
    assert _chosen(["secrets", "put", "--user", "x"]) == "secrets"
    assert _chosen(["-h", "serve"]) == "serve"


def test_both_secret_stores_answer_admin_calls_with_refs(tmp_path) -> None:
    """One admin protocol: put and rotate answer a SecretRef (never a value) in every backend,
    and location() says where the secret lives."""
    from egress.secrets.local import LocalSecretStore
    from egress.secrets.model import SecretAdmin, SecretRef
    from egress.secrets.vault import VaultSecretStore

    store: SecretAdmin = LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key", create=True)
    ref = store.put("a@x.com", "bot", "k", "value-1234567890", ["h.example"], hints={"header": "X"})
    assert isinstance(ref, SecretRef) and ref.hosts == ("h.example",)
    rotated = store.rotate("a@x.com", "bot", "k", "value-0987654321")
    assert isinstance(rotated, SecretRef) and rotated.placeholder == ref.placeholder
    assert store.list() == [rotated]
    assert store.location("a@x.com", "bot", "k") == "kv/proxy-secrets/a@x.com/bot/k"
    assert store.delete("a@x.com", "bot", "k") and not store.delete("a@x.com", "bot", "k")
    # the Vault store's location names the server (no server needed to build the string)
    from egress.secrets.vault_auth import TokenAuth, VaultSession

    vault: SecretAdmin = VaultSecretStore(
        VaultSession("http://127.0.0.1:8200", TokenAuth("t")), mount="m", prefix="p"
    )
    assert (
        vault.location("a@x.com", "bot", "k") == "m/p/a@x.com/bot/k in Vault http://127.0.0.1:8200"
    )
