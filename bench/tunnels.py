"""Helpers the memory benchmarks share: an egress proxy whose agent may CONNECT to 127.0.0.1,
TLS handshakes through it, and a process's RSS."""

from __future__ import annotations

import base64
import resource
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from egress.testing.net import free_port
from egress.testing.proxy import ProxyProcess, start_proxy
from egress.testing.world import world


@dataclass
class Rig:
    proxy: ProxyProcess
    auth: str  # Proxy-Authorization value
    target: tuple[str, int]  # the CONNECT target (nothing listens: connections are lazy)

    def connect_request(self) -> bytes:
        host, port = self.target
        return (
            f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Proxy-Authorization: {self.auth}\r\n\r\n"
        ).encode()


def start(tmp: Path, extra_args: list[str]) -> Rig:
    """A proxy whose one agent may reach 127.0.0.1:<a free port>."""
    w = world(tmp, origin_ca="bench-origin-ca")
    token = w.agent("bench@example.com", "bot")
    port = free_port()
    rule = {"id": "t", "hosts": ["127.0.0.1", "*.certs.test"], "ports": [port], "methods": ["GET"]}
    data = w.policy({"bench@example.com/bot": [rule]})
    proxy = start_proxy(
        state_dir=tmp / "state",
        ca_dir=w.ca_dir,
        data_file=data,
        upstream_ca=w.test_ca.cert_path,
        extra_args=["--max-conns-per-agent", "0", *extra_args],
        timeout=60,
    )
    auth = "Basic " + base64.b64encode(f"bot:{token}".encode()).decode()
    return Rig(proxy, auth, ("127.0.0.1", port))


def tunnel(rig: Rig, ctx: ssl.SSLContext, sni: str) -> ssl.SSLSocket:
    """CONNECT, then a TLS handshake with ``sni`` (the proxy mints a leaf for it)."""
    raw = socket.create_connection(("127.0.0.1", rig.proxy.port), timeout=30)
    raw.sendall(rig.connect_request())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = raw.recv(4096)
        if not chunk:
            raise ConnectionError(f"proxy closed the CONNECT: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"CONNECT refused: {head.splitlines()[0]!r}")
    return ctx.wrap_socket(raw, server_hostname=sni)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raise_nofile(want: int) -> int:
    """Soft limit of open files up to ``want`` (bounded by the hard limit); the new limit.
    Processes started afterwards (the proxy) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(max(soft, want), hard) if hard != resource.RLIM_INFINITY else max(soft, want)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new
