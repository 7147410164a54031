"""Run ``egress serve`` as a real subprocess on a free port and talk to it over sockets.

The process side (start_proxy, ProxyProcess, DecisionEvents, spawn_until_ready, basic) lives
in egress.testing.proxy so bench/ can use it; the raw-socket helpers stay here.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from egress.testing.proxy import (
    REPO,
    DecisionEvents,
    ProxyProcess,
    basic,
    spawn_until_ready,
    start_proxy,
)

__all__ = [
    "REPO",
    "DecisionEvents",
    "ProxyProcess",
    "basic",
    "parse_response",
    "proxy_for",
    "raw_connect",
    "read_http_response",
    "spawn_until_ready",
    "start_proxy",
]


def raw_connect(port: int, target: str, auth: str | None) -> tuple[socket.socket, bytes]:
    """Send a CONNECT by hand; return the socket and the proxy's raw answer head (+body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if auth:
        req += f"Proxy-Authorization: {auth}\r\n"
    sock.sendall((req + "\r\n").encode())
    return sock, read_http_response(sock)


def read_http_response(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """Read one HTTP/1.1 response (head + Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def proxy_for(
    world: Any,
    tmp_path: Path,
    *extra_args: str,
    data_file: Path | None = None,
    name: str = "state",
    secrets: bool = True,
    allow_loopback: bool = True,
) -> ProxyProcess:
    """A proxy of its own for one test: a fresh state dir holding the shared world's agents
    (and secrets), the world's CA, policy data and origin trust."""
    state = tmp_path / name
    state.mkdir(parents=True, exist_ok=True)
    names = ("identities.json", "secrets.enc", "secrets.key") if secrets else ("identities.json",)
    for file in names:
        (state / file).write_bytes((world.state_dir / file).read_bytes())
        (state / file).chmod(0o600)
    return start_proxy(
        state_dir=state,
        ca_dir=world.ca_dir,
        data_file=data_file or world.data_file,
        upstream_ca=world.test_ca.cert_path,
        extra_args=list(extra_args),
        allow_loopback=allow_loopback,
    )
