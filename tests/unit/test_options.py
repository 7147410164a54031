"""The option mechanism and the typed configs built on it: precedence, parsing, shared rows."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from egress import options
from egress.errors import ConfigError
from egress.gateway.config import GATEWAY_OPTIONS, GatewayServeConfig, add_gateway_arguments
from egress.operator.config import OperatorConfig
from egress.options import Option, add_options
from egress.proxy.config import SERVE_OPTIONS, ServeConfig, add_serve_arguments
from egress.secrets.factory import VaultConfig, add_vault_arguments

ROW = Option("--thing", "EGRESS_TEST_THING", "dflt", "a thing")


def _parse(rows: list[Option], argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_options(p, rows)
    return p.parse_args(argv)


def test_default_when_neither_flag_nor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROW.env, raising=False)
    assert _parse([ROW], []).thing == "dflt"


def test_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROW.env, "from-env")
    assert _parse([ROW], []).thing == "from-env"


def test_flag_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROW.env, "from-env")
    assert _parse([ROW], ["--thing", "from-flag"]).thing == "from-flag"


def test_help_names_env_and_default() -> None:
    p = argparse.ArgumentParser()
    add_options(p, [ROW, Option("--other", "EGRESS_TEST_OTHER", None, "no default")])
    text = p.format_help()
    assert "[env EGRESS_TEST_THING, default dflt]" in text
    assert "[env EGRESS_TEST_OTHER]" in text


def test_option_value_reads_a_given_environment() -> None:
    assert ROW.value({}) == "dflt"
    assert ROW.value({ROW.env: "x"}) == "x"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: options.number("ten", "--n", int), "--n must be a number, got 'ten'"),
        (lambda: options.number("-1", "--n", int), "--n must not be negative"),
        (lambda: options.seconds("soon", "--t"), "--t must be seconds, got 'soon'"),
        (lambda: options.size("12x", "--s"), "--s must be bytes with an optional k/m/g suffix"),
        (lambda: options.flag("maybe", "--f"), "--f must be true or false, got 'maybe'"),
        (lambda: options.choice("c", ("a", "b"), "--c"), "--c must be one of a, b, got 'c'"),
        (lambda: options.cidrs("10.0.0.0/8,nope"), "not a CIDR: 'nope'"),
        (lambda: options.parse_hostport("8080"), "expected host:port, got '8080'"),
    ],
)
def test_bad_values_are_config_errors_naming_the_flag(call, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        call()
    assert message in str(e.value)


def test_good_values() -> None:
    assert options.number("3", "--n", int) == 3
    assert options.size("64m", "--s") == 64 * 1024**2
    assert options.size("512", "--s") == 512
    assert options.flag("YES", "--f") is True and options.flag("", "--f") is False
    assert options.cidrs(" 10.0.0.0/8 , fd00::/8,") == ("10.0.0.0/8", "fd00::/8")
    assert options.parse_hostport("[::1]:9090") == ("::1", 9090)
    assert options.parse_hostport(":9090") == ("127.0.0.1", 9090)


def test_state_file_defaults_under_the_state_dir() -> None:
    assert options.state_file(None, Path("st"), "x.json") == Path("st/x.json")
    assert options.state_file("elsewhere.json", Path("st"), "x.json") == Path("elsewhere.json")


def test_shared_rows_are_the_same_objects_in_serve_and_gateway() -> None:
    shared = [options.STATE_DIR, options.IDENTITIES, options.SECRETS, options.SECRETS_KEY]
    shared += [options.POLICY_DIR, options.DATA_FILE, options.OPA_URL, options.OPA_TIMEOUT]
    for row in shared:
        assert row in SERVE_OPTIONS and row in GATEWAY_OPTIONS
    flags = [r.flag for r in SERVE_OPTIONS]
    assert len(flags) == len(set(flags))


def _serve(argv: list[str]) -> ServeConfig:
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    add_vault_arguments(p)
    return ServeConfig.from_args(p.parse_args(argv))


def test_serve_config_defaults_and_state_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    for row in SERVE_OPTIONS:
        monkeypatch.delenv(row.env, raising=False)
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    cfg = _serve(["--state-dir", "/tmp/st"])
    assert cfg.identities == Path("/tmp/st/identities.json")
    assert cfg.secrets_file == Path("/tmp/st/secrets.enc")
    assert cfg.secrets_key_file == Path("/tmp/st/secrets.key")
    assert cfg.decision_log == Path("/tmp/st/decisions.log")
    assert (cfg.listen_host, cfg.listen_port, cfg.opa_timeout) == ("127.0.0.1", 8080, 0.25)
    assert cfg.vault is None


def test_serve_config_env_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGRESS_MAX_HEADERS", "7")
    monkeypatch.setenv("EGRESS_LOG_MASK", "both")
    cfg = _serve([])
    assert cfg.max_headers == 7 and cfg.log_mask == "both"
    with pytest.raises(ConfigError, match="--listen must be host:port"):
        _serve(["--listen", "nope"])
    with pytest.raises(ConfigError, match="--opa-timeout must be seconds"):
        _serve(["--opa-timeout", "x"])


def test_vault_config_is_typed_and_only_with_an_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    assert _serve([]).vault is None
    vault = _serve(["--vault-addr", "https://v:8200", "--vault-timeout", "1.5"]).vault
    assert vault == VaultConfig(addr="https://v:8200", timeout=1.5)
    with pytest.raises(ConfigError, match="--vault-timeout/--secrets-ttl must be seconds"):
        _serve(["--vault-addr", "https://v:8200", "--secrets-ttl", "x"])


def test_gateway_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for row in GATEWAY_OPTIONS:
        monkeypatch.delenv(row.env, raising=False)
    monkeypatch.setenv("EGRESS_OPA_TIMEOUT", "0.5")
    p = argparse.ArgumentParser()
    add_gateway_arguments(p)
    cfg = GatewayServeConfig.from_args(p.parse_args(["--state-dir", "s", "--admin-listen", ":0"]))
    assert (cfg.listen_host, cfg.listen_port) == ("127.0.0.1", 4000)
    assert cfg.opa_timeout == 0.5, "the gateway reads the shared --opa-timeout row"
    assert cfg.identities == Path("s/identities.json")
    assert cfg.decision_log == Path("s/gateway-decisions.log")
    assert cfg.log_key_file == Path("s/gateway-log.key")
    assert cfg.admin_listen == ("127.0.0.1", 0)
    assert cfg.routes_file == Path("gateway.json") and cfg.vault is None


def test_operator_config_from_env() -> None:
    default = OperatorConfig.from_env({})
    assert default.proxy_admin == "http://egress-proxy-admin.egress-system:9090"
    assert default.platform_namespace == "egress-system"
    assert default.platform_domain == "agents.example.com"
    env = {"EGRESS_PROXY_ADMIN": "http://a:1", "EGRESS_PLATFORM_DOMAIN": "ex.org"}
    cfg = OperatorConfig.from_env(env)
    assert (cfg.proxy_admin, cfg.platform_domain) == ("http://a:1", "ex.org")


def test_gateway_verifier_choice() -> None:
    from egress.gateway.identity import JwtVerifier
    from egress.gateway.server import make_verifier

    def cfg(*argv: str) -> GatewayServeConfig:
        p = argparse.ArgumentParser()
        add_gateway_arguments(p)
        return GatewayServeConfig.from_args(p.parse_args(list(argv)))

    assert make_verifier(cfg()) is None
    with pytest.raises(ConfigError, match="--jwt-issuer is required"):
        make_verifier(cfg("--jwks-url", "https://k/jwks"))
    jwt = make_verifier(cfg("--jwks-url", "https://k/jwks", "--jwt-issuer", "https://k"))
    assert isinstance(jwt, JwtVerifier)
