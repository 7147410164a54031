"""Real clients through the proxy: httpx (HTTP/1.1 and HTTP/2), raw sockets, curl."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import httpx

from tests.support.proxy import ProxyProcess, basic, parse_response, raw_connect, read_http_response


def http_client(proxy: ProxyProcess, agent, *, http2: bool = False, **kw) -> httpx.Client:
    return httpx.Client(
        proxy=proxy.url(agent.name, agent.token),
        verify=proxy.client_context(),
        http2=http2,
        timeout=15,
        **kw,
    )


@dataclass
class Tunnel:
    """A CONNECT tunnel opened by hand, then TLS with a chosen SNI: full control of the bytes."""

    sock: ssl.SSLSocket

    def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(raw)
        return parse_response(read_http_response(self.sock))

    def close(self) -> None:
        self.sock.close()


def open_tunnel(proxy: ProxyProcess, agent, target: str, sni: str | None) -> Tunnel:
    sock, answer = raw_connect(proxy.port, target, basic(agent.name, agent.token))
    status, _, _ = parse_response(answer)
    assert status == 200, answer
    ctx = proxy.client_context()
    if sni is None:
        ctx.check_hostname = False
    return Tunnel(ctx.wrap_socket(sock, server_hostname=sni))


def get(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def plain_socket_request(proxy: ProxyProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(raw)
        return parse_response(read_http_response(s))


def curl(proxy: ProxyProcess, agent, url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "15",
            "-x",
            f"http://127.0.0.1:{proxy.port}",
            "--proxy-user",
            f"{agent.name}:{agent.token}",
            "--cacert",
            str(proxy.ca_cert),
            "-D",
            "-",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def seconds_until_denied(
    tunnel: Tunnel, path: str, host: str, since: float, limit: float = 3.0
) -> tuple[float, dict[str, str]]:
    """Send requests on an open tunnel until one is refused with 403; returns the seconds from
    ``since`` (a monotonic time) to that answer, and its headers."""
    while True:
        status, headers, _ = tunnel.request(get(path, host))
        if status == 403:
            return time.monotonic() - since, headers
        assert time.monotonic() - since < limit, f"still allowed {limit} s after the kill"
        time.sleep(0.02)
