"""Finding the binaries `make test` builds; the process lifecycle (stop, kill, pause, resume)
is egress.testing.process.ManagedProcess, re-exported here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from egress.testing.process import ManagedProcess

__all__ = ["ManagedProcess", "required_binary"]

REPO = Path(__file__).resolve().parents[2]


def required_binary(env: str, default: str, make_target: str) -> Path:
    """$env, else REPO/default. Missing: a failure under CI (make test builds it), a skip
    otherwise, naming the make target that provides it."""
    path = Path(os.environ.get(env) or REPO / default)
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} missing: `make {make_target}` provides it")
        pytest.skip(f"{path} missing: run `make {make_target}`")
    return path
