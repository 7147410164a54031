"""A real OpenBao (Vault-compatible) dev server (bin/bao, from deploy/openbao) as a test process."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.origin import free_port
from tests.support.process import ManagedProcess, required_binary

REPO = Path(__file__).resolve().parents[2]
ROOT_TOKEN = "root"


def bao_binary() -> Path:
    return required_binary("BAO", "bin/bao", "bao")


def _free_port_pair() -> int:
    """A free port whose successor is free too: dev mode puts its cluster listener on port + 1."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


@dataclass
class BaoServer(ManagedProcess):
    binary: Path
    port: int
    token: str = ROOT_TOKEN
    proc: subprocess.Popen | None = None
    audit_file: Path | None = None  # a declarative file audit device (API creation is refused)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Vault-Token": self.token}

    def start(self, timeout: float = 20.0) -> BaoServer:
        # No BAO_*/VAULT_* from the caller's environment: they would point the server elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
        extra: list[str] = []
        if self.audit_file is not None:
            config = self.audit_file.with_suffix(".hcl")
            config.write_text(
                'audit "file" "test-audit" {\n'
                f'  options {{\n    file_path = "{self.audit_file}"\n  }}\n}}\n'
            )
            extra = [f"-config={config}"]
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "server",
                "-dev",
                f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-no-store-token",
                "-log-level=error",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        self._wait(deadline, "/v1/sys/health")
        r = httpx.post(
            f"{self.url}/v1/sys/mounts/kv",
            headers=self.headers,
            json={"type": "kv", "options": {"version": "2"}},
        )
        r.raise_for_status()
        self._wait(deadline, "/v1/kv/config")  # a new KV v2 mount answers once it is set up
        return self

    def _wait(self, deadline: float, path: str) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bao exited: {self.proc.stderr.read().decode()}")
            try:
                r = httpx.get(self.url + path, headers=self.headers, timeout=0.5)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"bao did not answer 200 on {path}")


def start_bao(audit_file: Path | None = None) -> BaoServer:
    return BaoServer(bao_binary(), _free_port_pair(), audit_file=audit_file).start()
