"""The real OPA server (bin/opa, built from Go modules by `make opa`) as a test process."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.origin import free_port
from tests.support.process import ManagedProcess, required_binary

REPO = Path(__file__).resolve().parents[2]


def opa_binary() -> Path:
    return required_binary("OPA", "bin/opa", "opa")


@dataclass
class OpaServer(ManagedProcess):
    binary: Path
    port: int
    policy_dir: Path
    data_file: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> OpaServer:
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "run",
                "--server",
                "--addr",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "error",
                str(self.policy_dir),
                str(self.data_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"opa exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(self.url + "/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("opa did not become healthy")


def start_opa(data_file: Path, policy_dir: Path = REPO / "policies" / "egress") -> OpaServer:
    return OpaServer(opa_binary(), free_port(), policy_dir, data_file).start()
