"""Long-lived connections through the proxy, one of each kind, and a clock for their end.

Every opener returns a ``Live``: the client socket and ``probe()``, one real exchange that
succeeds while the connection is usable. ``seconds_until_closed`` measures how long the proxy
takes to end a connection (EOF or reset seen by the client).
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.clients import get, open_tunnel
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    raw_connect,
    read_http_response,
)
from tests.support.ws_live_origin import client_frame, read_server_frame, upgrade_request


@dataclass
class Live:
    kind: str
    sock: socket.socket
    probe: Callable[[], bool]
    h2: Any = None  # the h2 connection state of an HTTP/2 Live

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _http_probe(sock: socket.socket, raw: bytes) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            sock.sendall(raw)
            answer = read_http_response(sock)
        except OSError:
            return False
        return bool(answer) and parse_response(answer)[0] == 200

    return probe


def open_tls_keepalive(p: ProxyProcess, agent: Any, origin_port: int) -> Live:
    host = f"localhost:{origin_port}"
    t = open_tunnel(p, agent, host, "localhost")
    return Live("tls-keepalive", t.sock, _http_probe(t.sock, get("/api/live", host)))


def h2_get(tls: ssl.SSLSocket, conn: Any, path: str, authority: str) -> int | None:
    """One GET on an open HTTP/2 connection; the status, or None if the connection ended
    (a 4xx refusal carries the reason in x-egress-reason, checked by the caller's events)."""
    import h2.events

    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [(":method", "GET"), (":scheme", "https"), (":authority", authority), (":path", path)],
        end_stream=True,
    )
    try:
        tls.sendall(conn.data_to_send())
        status = None
        while True:
            data = tls.recv(65536)
            if not data:
                return None
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream:
                    status = int(dict(ev.headers)[b":status"])
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == stream:
                    tls.sendall(conn.data_to_send())
                    return status
                if isinstance(ev, h2.events.ConnectionTerminated):
                    return None
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == stream:
                    return None
            tls.sendall(conn.data_to_send())
    except OSError:
        return None


def open_h2_keepalive(p: ProxyProcess, agent: Any, origin_port: int) -> Live:
    import h2.config
    import h2.connection

    host = f"localhost:{origin_port}"
    sock, answer = raw_connect(p.port, host, basic(agent.name, agent.token))
    assert parse_response(answer)[0] == 200, answer
    ctx = p.client_context()
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    return Live("h2-keepalive", tls, lambda: h2_get(tls, conn, "/api/h2", host) == 200, conn)


def open_plain_keepalive(p: ProxyProcess, agent: Any, plain_port: int) -> Live:
    sock = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    raw = (
        f"GET http://localhost:{plain_port}/api/live HTTP/1.1\r\nHost: localhost:{plain_port}\r\n"
        f"Proxy-Authorization: {basic(agent.name, agent.token)}\r\n\r\n"
    ).encode()
    return Live("plain-keepalive", sock, _http_probe(sock, raw))


def open_connect_only(p: ProxyProcess, agent: Any, origin_port: int) -> Live:
    """CONNECT answered 200, then nothing: not even a TLS handshake."""
    sock, answer = raw_connect(p.port, f"localhost:{origin_port}", basic(agent.name, agent.token))
    assert parse_response(answer)[0] == 200, answer
    return Live("connect-only", sock, lambda: True)


def open_passthrough(p: ProxyProcess, agent: Any, port: int, origin_ca: Path) -> Live:
    """A tunnel to 127.0.0.1:port, which the policy marks inspect: false (TLS end to end)."""
    sock, answer = raw_connect(p.port, f"127.0.0.1:{port}", basic(agent.name, agent.token))
    assert parse_response(answer)[0] == 200, answer
    ctx = ssl.create_default_context(cafile=str(origin_ca))
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    return Live("passthrough", tls, _http_probe(tls, get("/api/pass", f"127.0.0.1:{port}")))


def open_websocket(p: ProxyProcess, agent: Any, ws_port: int) -> Live:
    host = f"localhost:{ws_port}"
    t = open_tunnel(p, agent, host, "localhost")
    t.sock.sendall(upgrade_request("/ws", host))
    status, _, _ = parse_response(read_http_response(t.sock))
    assert status == 101

    def probe() -> bool:
        try:
            t.sock.sendall(client_frame(b"ping"))
            frame = read_server_frame(t.sock)
        except OSError:
            return False
        return frame == (1, b"echo:ping")

    return Live("websocket", t.sock, probe)


def seconds_until_closed(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the proxy ends the connection, or None if it is still open at ``limit``."""
    started = time.monotonic()
    while True:
        left = limit - (time.monotonic() - started)
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return None
        except (ssl.SSLError, OSError):
            return time.monotonic() - started
        if not data:
            return time.monotonic() - started


def connection_events(
    p: ProxyProcess, reason: str, n: int = 1, timeout: float = 5.0, user: str | None = None
) -> list[dict]:
    """The ``kind: "connection"`` events with this reason (of this agent's user, if given),
    once at least n are written: earlier tests on the same proxy may have written some."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e
            for e in p.events()
            if e["kind"] == "connection"
            and e["result"]["reason"] == reason
            and (user is None or (e["agent"] or {}).get("user") == user)
        ]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def data_with_rules(world: Any, tmp_path: Path, extra_rules: list[dict]) -> Path:
    """The world's policy data with rules added to alice's and bob's (their rules for
    127.0.0.1 dropped: the passthrough rule takes that host), GETs to the plain origin too."""
    plain = {
        "id": "plain",
        "hosts": ["localhost"],
        "ports": [world.plain.port],
        "schemes": ["http"],
        "methods": ["GET"],
    }
    extra_rules = [*extra_rules, plain]
    data = json.loads(world.data_file.read_text())
    for user in ("alice@example.com", "bob@example.com"):
        agent = data["egress"]["agents"][user]["triage-bot"]
        kept = [r for r in agent["rules"] if "127.0.0.1" not in r.get("hosts", [])]
        agent["rules"] = kept + extra_rules
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return path
