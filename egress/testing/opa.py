"""The real OPA server (bin/opa, built by `make opa`) as a child process on a free port."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from egress.testing.net import free_port
from egress.testing.process import ManagedProcess

REPO = Path(__file__).resolve().parents[2]


def default_opa_binary() -> Path:
    """$OPA, else bin/opa of this checkout (it may be missing: callers check)."""
    return Path(os.environ.get("OPA") or REPO / "bin" / "opa")


@dataclass
class OpaServer(ManagedProcess):
    binary: Path
    port: int
    policy_dir: Path
    data_file: Path
    proc: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> OpaServer:
        """Spawn ``opa run --server`` and return once /health answers 200."""
        self.proc = spawn_opa(
            self.binary, self.port, [str(self.policy_dir), str(self.data_file)], "/health", timeout
        )
        return self


def spawn_opa(
    binary: Path, port: int, args: list[str], ready_path: str, timeout: float
) -> subprocess.Popen[Any]:
    """``opa run --server`` on 127.0.0.1:``port`` with ``args``; returned once ``ready_path``
    answers 200. Raises (with OPA's stderr) if it exits or is not ready in ``timeout``."""
    command = [str(binary), "run", "--server", "--addr", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*command, "--log-level", "error", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"opa exited with {proc.returncode}: {stderr}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"opa did not answer {ready_path} in {timeout} s")


def start_opa(
    data_file: Path,
    policy_dir: Path = REPO / "policies" / "egress",
    binary: Path | None = None,
) -> OpaServer:
    """A healthy OPA serving ``policy_dir`` with ``data_file`` (binary: default_opa_binary())."""
    return OpaServer(binary or default_opa_binary(), free_port(), policy_dir, data_file).start()
