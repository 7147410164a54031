"""The one option mechanism: each setting is a row (flag, environment variable, default, help).

A process declares its rows once; ``add_options`` turns them into argparse flags that default to
their environment variable (so a flag beats the environment, which beats the default), and the
process's typed config parses the strings with the helpers below, which raise ``ConfigError``
with the flag's name. Rows several processes share (state dir, identities, secret store, policy,
OPA) are declared here once, and so are the file names the state directory holds by default.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from egress.errors import ConfigError


class Option(NamedTuple):
    """One setting: its flag, its environment variable, its default (None: unset) and help."""

    flag: str
    env: str
    default: str | None
    help: str

    def value(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The environment's value, else the default (for processes configured without flags)."""
        return (os.environ if environ is None else environ).get(self.env, self.default)


# Files under --state-dir when their own flag is not given; named once for every process.
IDENTITIES_FILE = "identities.json"
SECRETS_FILE = "secrets.enc"
SECRETS_KEY_FILE = "secrets.key"

STATE_DIR = Option(
    "--state-dir", "EGRESS_STATE_DIR", "state", "where local runtime files live by default"
)
POLICY_DIR = Option(
    "--policy-dir", "EGRESS_POLICY_DIR", "policies", "directory of .rego policy modules"
)
DATA_FILE = Option("--data-file", "EGRESS_DATA_FILE", "policies/data.json", "policy data (JSON)")
IDENTITIES = Option(
    "--identities", "EGRESS_IDENTITIES", None, f"identities file [STATE/{IDENTITIES_FILE}]"
)
SECRETS = Option(
    "--secrets-file", "EGRESS_SECRETS_FILE", None, f"encrypted secret store [STATE/{SECRETS_FILE}]"
)
SECRETS_KEY = Option(
    "--secrets-key-file",
    "EGRESS_SECRETS_KEY_FILE",
    None,
    f"key of the secret store [STATE/{SECRETS_KEY_FILE}] (or EGRESS_SECRETS_KEY)",
)
OPA_URL = Option(
    "--opa-url",
    "EGRESS_OPA_URL",
    None,
    "ask this OPA server instead of the embedded engine (e.g. http://127.0.0.1:8181)",
)
OPA_TIMEOUT = Option(
    "--opa-timeout", "EGRESS_OPA_TIMEOUT", "0.25", "seconds before an OPA query is a deny"
)
POLICY_WORKERS = Option(
    "--policy-workers",
    "EGRESS_POLICY_WORKERS",
    "2",
    "threads the embedded engine decides on, off the event loop (0: on the loop)",
)


def add_options(parser: argparse.ArgumentParser, table: Iterable[Option]) -> None:
    """Every flag of a table, defaulting to its environment variable, both named in --help."""
    for flag, env, default, help_text in table:
        shown = f" [env {env}" + (f", default {default}]" if default else "]")
        parser.add_argument(flag, default=os.environ.get(env, default), help=help_text + shown)


def state_file(value: str | None, state: Path, name: str) -> Path:
    """The path a flag gives, else ``name`` inside the state directory."""
    return Path(value) if value else state / name


def number(value: str, flag: str, kind: type[int] | type[float]) -> int | float:
    """A non-negative int or float."""
    try:
        n = kind(value)
    except ValueError as e:
        raise ConfigError(f"{flag} must be a number, got {value!r}") from e
    if n < 0:
        raise ConfigError(f"{flag} must not be negative")
    return n


def seconds(value: str, flag: str) -> float:
    """A float of seconds (any sign: callers that care check the range)."""
    try:
        return float(value)
    except ValueError as e:
        raise ConfigError(f"{flag} must be seconds, got {value!r}") from e


def size(value: str, flag: str) -> int:
    """Bytes, with an optional k/m/g suffix (as --body-size-limit takes)."""
    v = str(value).strip().lower()
    scale = {"k": 1024, "m": 1024**2, "g": 1024**3}.get(v[-1:], 1)
    digits = v[:-1] if scale != 1 else v
    if not digits.isdigit():
        raise ConfigError(f"{flag} must be bytes with an optional k/m/g suffix, got {value!r}")
    return int(digits) * scale


def flag(value: str | bool, name: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (empty: false)."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def choice(value: str, options: tuple[str, ...], name: str) -> str:
    if value not in options:
        raise ConfigError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def cidrs(value: str | None) -> tuple[str, ...]:
    """Comma-separated CIDRs, each checked."""
    out = tuple(c.strip() for c in (value or "").split(",") if c.strip())
    for c in out:
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError as e:
            raise ConfigError(f"not a CIDR: {c!r}", reason="cidr_invalid") from e
    return out


def parse_hostport(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too); an empty host means loopback."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
