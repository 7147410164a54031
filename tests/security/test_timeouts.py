"""Timeouts: a client cannot hold a connection by sending a head slowly, by idling between
requests, or by leaving a passthrough or WebSocket tunnel silent.

Each closure is measured from the client side and has its decision event; clients that keep
working are not cut off.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import World
from tests.support.clients import get, open_tunnel
from tests.support.liveconns import (
    Live,
    connection_events,
    data_with_rules,
    open_h2_keepalive,
    open_passthrough,
    open_plain_keepalive,
    open_tls_keepalive,
    open_websocket,
    seconds_until_closed,
)
from tests.support.proxy import ProxyProcess, basic, proxy_for
from tests.support.ws_live_origin import WsOrigin, start_ws_origin

pytestmark = pytest.mark.e2e

HEAD, IDLE, TUNNEL = 1.0, 2.5, 1.5  # seconds, short for the tests


@pytest.fixture(scope="module")
def ws_origin(world: World) -> Iterator[WsOrigin]:
    leaf = world.test_ca.issue("ws-origin", ["localhost"], ["127.0.0.1"])
    origin = start_ws_origin(leaf.cert_path, leaf.key_path)
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def tproxy(
    world: World, ws_origin: WsOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("timeouts")
    rules = [
        {"id": "blobs", "hosts": ["127.0.0.1"], "ports": [world.origin.port], "inspect": False},
        {"id": "ws", "hosts": ["localhost"], "ports": [ws_origin.port], "methods": ["GET"]},
    ]
    p = proxy_for(
        world,
        tmp,
        "--request-head-timeout",
        str(HEAD),
        "--idle-timeout",
        str(IDLE),
        "--tunnel-idle-timeout",
        str(TUNNEL),
        data_file=data_with_rules(world, tmp, rules),
    )
    yield p
    p.stop()


def _trickle(sock: socket.socket, first: bytes, drip: bytes, limit: float) -> tuple[float, bytes]:
    """Send ``first``, then one ``drip`` every 0.2 s (a slowloris never finishing its head);
    (seconds until the proxy closed, what it answered)."""
    started = time.monotonic()
    received = b""
    sock.sendall(first)
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        except TimeoutError:
            try:
                sock.sendall(drip)
            except OSError:
                break
        except OSError:
            break
    return time.monotonic() - started, received


SLOW_HEADS: dict[str, tuple[bytes, bytes]] = {
    # a CONNECT head that never ends
    "connect-head": (b"CONNECT localhost:1 HTTP/1.1\r\nHost: localhost:1\r\nX-Slow: ", b"a"),
    # an absolute-form request head that never ends
    "plain-head": (b"GET http://localhost:1/api/ HTTP/1.1\r\nX-Slow: ", b"b"),
    # a line-by-line head, each header a new line
    "header-lines": (b"GET http://localhost:1/api/ HTTP/1.1\r\n", b"X-A: b\r\n"),
    # connected, nothing sent at all
    "silent": (b"", b""),
}


@pytest.mark.parametrize("kind", sorted(SLOW_HEADS))
def test_slow_request_head_is_cut_off_with_408(tproxy: ProxyProcess, kind: str) -> None:
    first, drip = SLOW_HEADS[kind]
    before = len(connection_events(tproxy, "request_head_timeout", n=0, timeout=0))
    with socket.create_connection(("127.0.0.1", tproxy.port), timeout=5) as sock:
        elapsed, answer = _trickle(sock, first, drip, limit=HEAD + 3)
    assert elapsed < HEAD + 1.0, elapsed
    assert elapsed >= HEAD - 0.1, elapsed  # not before its time
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    events = connection_events(tproxy, "request_head_timeout", n=before + 1)
    assert len(events) == before + 1
    assert events[-1]["status"] == 408 and events[-1]["agent"] is None


def test_slow_head_inside_a_tls_tunnel_is_cut_off(world: World, tproxy: ProxyProcess) -> None:
    host = f"localhost:{world.origin.port}"
    t = open_tunnel(tproxy, world.alice, host, "localhost")
    try:
        elapsed, _ = _trickle(t.sock, b"GET /api/slow HTTP/1.1\r\nX-Slow: ", b"c", HEAD + 3)
    finally:
        t.close()
    assert HEAD - 0.1 <= elapsed < HEAD + 1.0, elapsed
    events = connection_events(tproxy, "request_head_timeout", user="alice@example.com")
    assert events, "no request_head_timeout event for alice's tunnel"


def test_second_head_on_keepalive_gets_its_own_clock(world: World, tproxy: ProxyProcess) -> None:
    """After an answer, the head clock starts at the next first byte, not at the answer."""
    live = open_plain_keepalive(tproxy, world.alice, world.plain.port)
    try:
        assert live.probe()
        time.sleep(IDLE * 0.6)  # idle, but below the idle timeout
        head = f"GET http://localhost:{world.plain.port}/api/x HTTP/1.1\r\nX-Slow: ".encode()
        elapsed, answer = _trickle(live.sock, head, b"d", HEAD + 3)
    finally:
        live.close()
    assert HEAD - 0.1 <= elapsed < HEAD + 1.0, elapsed
    assert answer.startswith(b"HTTP/1.1 408")


Opener = Callable[[ProxyProcess, Any, World, WsOrigin], Live]

KEEPALIVE: dict[str, Opener] = {
    "tls-keepalive": lambda p, a, w, ws: open_tls_keepalive(p, a, w.origin.port),
    "h2-keepalive": lambda p, a, w, ws: open_h2_keepalive(p, a, w.origin.port),
    "plain-keepalive": lambda p, a, w, ws: open_plain_keepalive(p, a, w.plain.port),
}
TUNNELS: dict[str, Opener] = {
    "passthrough": lambda p, a, w, ws: open_passthrough(p, a, w.origin.port, w.test_ca.cert_path),
    "websocket": lambda p, a, w, ws: open_websocket(p, a, ws.port),
}


@pytest.mark.parametrize(
    ("kind", "limit"),
    [(k, IDLE) for k in sorted(KEEPALIVE)] + [(k, TUNNEL) for k in sorted(TUNNELS)],
)
def test_idle_connection_is_closed_with_an_event(
    world: World, ws_origin: WsOrigin, tproxy: ProxyProcess, kind: str, limit: float
) -> None:
    opener = {**KEEPALIVE, **TUNNELS}[kind]
    before = len(connection_events(tproxy, "idle_timeout", n=0, timeout=0))
    live = opener(tproxy, world.bob, world, ws_origin)
    try:
        assert live.probe()
        started = time.monotonic()
        closed = seconds_until_closed(live.sock, limit=limit + 3)
    finally:
        live.close()
    assert closed is not None, f"{kind}: still open {limit + 3}s after its last byte"
    waited = time.monotonic() - started
    assert limit - 0.1 <= waited < limit + 1.0, waited
    events = connection_events(tproxy, "idle_timeout", n=before + 1)
    assert len(events) == before + 1
    assert events[-1]["agent"]["user"] == "bob@example.com"


@pytest.mark.parametrize("kind", sorted(KEEPALIVE) + sorted(TUNNELS))
def test_a_busy_connection_is_not_cut(
    world: World, ws_origin: WsOrigin, tproxy: ProxyProcess, kind: str
) -> None:
    """Exchanges every half timeout keep it open well past the timeout."""
    live = {**KEEPALIVE, **TUNNELS}[kind](tproxy, world.bob, world, ws_origin)
    try:
        started = time.monotonic()
        while time.monotonic() - started < max(IDLE, TUNNEL) * 2.5:
            assert live.probe(), f"{kind} cut after {time.monotonic() - started:.1f}s"
            time.sleep(min(IDLE, TUNNEL) / 2)
    finally:
        live.close()


def test_a_tunnel_waiting_for_its_first_request_has_the_head_clock(
    world: World, tproxy: ProxyProcess
) -> None:
    """CONNECT answered, TLS begun, then nothing: the head timeout applies inside too."""
    sock = socket.create_connection(("127.0.0.1", tproxy.port), timeout=5)
    target = f"localhost:{world.origin.port}"
    sock.sendall(
        f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        f"Proxy-Authorization: {basic(world.alice.name, world.alice.token)}\r\n\r\n".encode()
    )
    try:
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        elapsed, _ = _trickle(sock, b"\x16\x03\x01", b"", HEAD + IDLE + 3)  # a TLS record begun
    finally:
        sock.close()
    assert elapsed < HEAD + 1.0, elapsed


def test_http2_frames_between_requests_do_not_start_the_head_clock(
    world: World, tproxy: ProxyProcess
) -> None:
    """PINGs after an answer begin no request: the connection lives until the idle timeout
    (not the shorter head timeout), and its closure says idle_timeout."""
    before = len(connection_events(tproxy, "idle_timeout", n=0, timeout=0))
    live = open_h2_keepalive(tproxy, world.bob, world.origin.port)
    try:
        assert live.probe()
        started = time.monotonic()
        live.h2.ping(b"egress!!")
        live.sock.sendall(live.h2.data_to_send())
        closed = seconds_until_closed(live.sock, limit=IDLE + 3)
    finally:
        live.close()
    assert closed is not None
    assert time.monotonic() - started >= IDLE - 0.1
    events = connection_events(tproxy, "idle_timeout", n=before + 1)
    assert events[-1]["agent"]["user"] == "bob@example.com"


def test_tls_handshake_done_then_waiting_is_idle_not_a_slow_head(
    world: World, tproxy: ProxyProcess
) -> None:
    """A tunnel that finished TLS and waits past the head timeout (but not the idle one)
    before its first request is served: only a begun head runs the head clock."""
    host = f"localhost:{world.origin.port}"
    t = open_tunnel(tproxy, world.alice, host, "localhost")
    try:
        time.sleep(HEAD + 0.6)
        status, _, _ = t.request(get("/api/late-first", host))
    finally:
        t.close()
    assert status == 200
