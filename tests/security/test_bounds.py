"""Bounds on connections: per agent, and for connections nobody has authenticated.

The attacks: one agent opens connection after connection; anyone opens sockets and never
authenticates. Each must meet its cap (429 ``too_many_connections``) with a decision event,
while other agents keep working. (Body memory: test_body_memory.py.)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.conftest import World
from tests.support.clients import get, open_tunnel
from tests.support.liveconns import connection_events, data_with_rules, open_plain_keepalive
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    proxy_for,
    raw_connect,
    read_http_response,
)

pytestmark = pytest.mark.e2e

PER_AGENT, UNAUTHENTICATED = 2, 3


@pytest.fixture(scope="module")
def bproxy(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("bounds")
    p = proxy_for(
        world,
        tmp,
        "--max-conns-per-agent",
        str(PER_AGENT),
        "--max-conns-unauthenticated",
        str(UNAUTHENTICATED),
        # one source (127.0.0.1) meets its own cap first; the global pool evicts instead of
        # refusing (test_unauth_flood.py)
        "--max-conns-unauthenticated-per-source",
        str(UNAUTHENTICATED),
        data_file=data_with_rules(world, tmp, []),
    )
    yield p
    p.stop()


def _connect(p: ProxyProcess, world: World, agent) -> tuple[socket.socket, int, dict, bytes]:
    sock, answer = raw_connect(
        p.port, f"localhost:{world.origin.port}", basic(agent.name, agent.token)
    )
    status, headers, body = parse_response(answer)
    return sock, status, headers, body


def _plain(p: ProxyProcess, world: World, agent) -> tuple[socket.socket, int, dict, bytes]:
    live = open_plain_keepalive(p, agent, world.plain.port)
    raw = (
        f"GET http://localhost:{world.plain.port}/api/cap HTTP/1.1\r\n"
        f"Host: localhost:{world.plain.port}\r\n"
        f"Proxy-Authorization: {basic(agent.name, agent.token)}\r\n\r\n"
    ).encode()
    live.sock.sendall(raw)
    status, headers, body = parse_response(read_http_response(live.sock))
    return live.sock, status, headers, body


OPENERS = {"connect": _connect, "plain": _plain}


@pytest.mark.parametrize("held", ["connect", "plain"])
@pytest.mark.parametrize("extra", ["connect", "plain"])
def test_agent_past_its_cap_gets_429_and_others_do_not(
    world: World, bproxy: ProxyProcess, held: str, extra: str
) -> None:
    opened = []
    try:
        for _ in range(PER_AGENT):
            sock, status, _, _ = OPENERS[held](bproxy, world, world.alice)
            opened.append(sock)
            assert status == 200
        sock, status, headers, body = OPENERS[extra](bproxy, world, world.alice)
        opened.append(sock)
        assert status == 429
        assert headers["x-egress-reason"] == "too_many_connections"
        event = bproxy.event_for(orjson.loads(body)["decision_id"])
        assert event["status"] == 429 and event["agent"]["user"] == "alice@example.com"
        assert event["result"]["reason"] == "too_many_connections"
        assert sock.recv(1) == b""  # and that connection is closed
        # bob is not alice: his connections are counted apart
        bob, status, _, _ = OPENERS[extra](bproxy, world, world.bob)
        opened.append(bob)
        assert status == 200
        # one of alice's connections ends: she is under her cap again
        opened.pop(0).close()
        deadline = time.monotonic() + 3
        while True:
            sock, status, _, _ = OPENERS[extra](bproxy, world, world.alice)
            opened.append(sock)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for s in opened:
            s.close()
        time.sleep(0.2)  # let the proxy see them go before the next case counts


@pytest.mark.parametrize("over", [1, 4])
def test_unauthenticated_connections_are_capped(
    world: World, bproxy: ProxyProcess, over: int
) -> None:
    # an agent with a tunnel open before the flood keeps it
    host = f"localhost:{world.origin.port}"
    tunnel = open_tunnel(bproxy, world.bob, host, "localhost")
    before = len(connection_events(bproxy, "too_many_connections", n=0, timeout=0))
    silent = [socket.create_connection(("127.0.0.1", bproxy.port)) for _ in range(UNAUTHENTICATED)]
    refused = []
    try:
        time.sleep(0.2)
        for _ in range(over):
            s = socket.create_connection(("127.0.0.1", bproxy.port), timeout=5)
            refused.append(s)
            answer = read_http_response(s)
            assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
            assert b"too_many_connections" in answer
            assert s.recv(1) == b""
        assert tunnel.request(get("/api/during-flood", host))[0] == 200
        events = connection_events(bproxy, "too_many_connections", n=before + over)
        assert len(events) == before + over
        assert all(e["status"] == 429 and e["agent"] is None for e in events[before:])
    finally:
        for s in silent + refused:
            s.close()
    time.sleep(0.3)
    # the flood gone, newcomers get in again
    sock, status, _, _ = _connect(bproxy, world, world.alice)
    sock.close()
    tunnel.close()
    assert status == 200
