"""A real Kubernetes API server for the tests: kube-apiserver (bin/kube-apiserver, built from Go
modules by `make kube-apiserver`) over Debian's etcd, both on 127.0.0.1.

There is no controller-manager, scheduler or kubelet: objects are stored, validated, admitted
and served exactly as in a cluster, but Deployments never get pods, new namespaces get no
`default` ServiceAccount, and a deleted namespace stays Terminating (its finalizer belongs to a
controller). Tests assert on the API objects, which is what the operator writes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.origin import free_port
from tests.support.process import required_binary

REPO = Path(__file__).resolve().parents[2]


def kube_binaries() -> tuple[Path, Path]:
    apiserver = required_binary("KUBE_APISERVER", "bin/kube-apiserver", "kube-apiserver")
    etcd = shutil.which("etcd")
    if etcd is None:
        if os.environ.get("CI"):
            pytest.fail("etcd missing: `make test` installs Debian's etcd-server")
        pytest.skip("etcd missing: apt-get install etcd-server")
    return apiserver, Path(etcd)


@dataclass
class KubeServer:
    """etcd + kube-apiserver in a temporary directory; ``token`` is a system:masters token."""

    workdir: Path
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        # the self-signed serving certificate the apiserver writes into --cert-dir
        return self.workdir / "certs" / "apiserver.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=10,
        )

    def start(self, timeout: float = 60.0) -> KubeServer:
        apiserver, etcd = kube_binaries()
        w = self.workdir
        (w / "etcd").mkdir(mode=0o700)
        client_port, peer_port = free_port(), free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    str(etcd),
                    "--name=test",
                    f"--data-dir={w / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{client_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                    "--log-level=error",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(w / "etcd.log", "wb"),  # noqa: SIM115 - lives as long as etcd
            )
        )
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (w / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (w / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (w / "tokens.csv").write_text(f"{self.token},admin,admin-uid,system:masters\n")
        self.port = free_port()
        self.procs.append(
            subprocess.Popen(
                [
                    str(apiserver),
                    f"--etcd-servers=http://127.0.0.1:{client_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    f"--cert-dir={w / 'certs'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={w / 'sa.pub'}",
                    f"--service-account-signing-key-file={w / 'sa.key'}",
                    f"--token-auth-file={w / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    "--v=0",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(w / "apiserver.log", "wb"),  # noqa: SIM115
            )
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    self.stop()
                    logs = (w / "apiserver.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"etcd/kube-apiserver exited: {logs}")
            if self.ca_file.exists():
                try:
                    with self.client() as c:
                        if c.get("/readyz").status_code == 200:
                            self._write_kubeconfig()
                            return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("kube-apiserver not ready in time")

    def _write_kubeconfig(self) -> None:
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
            f"clusters: [{{name: test, cluster: {{server: '{self.url}', "
            f"certificate-authority: '{self.ca_file}'}}}}]\n"
            f"users: [{{name: admin, user: {{token: '{self.token}'}}}}]\n"
            "contexts: [{name: test, context: {cluster: test, user: admin}}]\n"
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()


def start_kube() -> KubeServer:
    return KubeServer(Path(tempfile.mkdtemp(prefix="egress-kube-"))).start()
