"""The real OPA server (bin/opa, built from Go modules by `make opa`) as a test process.

The process handle lives in egress.testing.opa (bench/ uses it too); here the binary is looked
up the way every test binary is: missing means a skip, or a failure under CI.
"""

from __future__ import annotations

from pathlib import Path

from egress.testing import opa as _opa
from egress.testing.opa import OpaServer
from tests.support.process import required_binary

__all__ = ["OpaServer", "opa_binary", "start_opa"]


def opa_binary() -> Path:
    return required_binary("OPA", "bin/opa", "opa")


def start_opa(data_file: Path, policy_dir: Path = _opa.REPO / "policies" / "egress") -> OpaServer:
    return _opa.start_opa(data_file, policy_dir, opa_binary())
