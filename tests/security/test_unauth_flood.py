"""A flood of unauthenticated sockets must not lock registered agents out.

The attack (red-team ops F3): open silent TCP sockets with no credential, re-opening the ones
the head timeout closes, until the unauthenticated pool is full; before the fix every agent's
next connection got 429 ``too_many_connections``. Now one source meets its own cap (its extra
sockets are refused, an agent on another address is not), and a full global pool evicts its
oldest silent socket for the newcomer, each eviction with a ``kind: "connection"`` event.

Sources are distinct loopback addresses (127.0.0.0/8 all reach the proxy on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from mitmproxy import connection

from egress.proxy.flowstate import source_of
from tests.conftest import World
from tests.support.liveconns import connection_events, data_with_rules
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    proxy_for,
    read_http_response,
)

pytestmark = pytest.mark.e2e

POOL, PER_SOURCE = 8, 3
WIDE_POOL = 48  # the sustained flood's pool: 24 sources x 3 overfill it
AGENT_SOURCE = "127.0.0.2"


@pytest.fixture(scope="module")
def fproxy(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("unauth-flood")
    p = proxy_for(
        world,
        tmp,
        "--max-conns-unauthenticated",
        str(POOL),
        "--max-conns-unauthenticated-per-source",
        str(PER_SOURCE),
        data_file=data_with_rules(world, tmp, []),
    )
    yield p
    p.stop()


def _open(p: ProxyProcess, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", p.port), timeout=5, source_address=(source, 0))


def _agent(p: ProxyProcess, source: str, head: str) -> tuple[socket.socket, int]:
    sock = _open(p, source)
    sock.sendall(head.encode())  # at once, as a client does
    return sock, parse_response(read_http_response(sock))[0]


def _agent_connect(p: ProxyProcess, world: World, source: str) -> tuple[socket.socket, int]:
    target = f"localhost:{world.origin.port}"
    auth = basic(world.alice.name, world.alice.token)
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n"
    return _agent(p, source, head)


def _agent_plain(p: ProxyProcess, world: World, source: str) -> tuple[socket.socket, int]:
    host = f"localhost:{world.plain.port}"
    auth = basic(world.alice.name, world.alice.token)
    head = (
        f"GET http://{host}/api/flood HTTP/1.1\r\nHost: {host}\r\n"
        f"Proxy-Authorization: {auth}\r\n\r\n"
    )
    return _agent(p, source, head)


AGENT = {"connect": _agent_connect, "plain": _agent_plain}


def _turned_away(sock: socket.socket) -> bytes:
    """What the proxy said before closing a socket it turned away (b"" if it said nothing)."""
    answer = read_http_response(sock)
    with contextlib.suppress(OSError):
        assert sock.recv(1) == b""  # and the socket is closed
    return answer


def _left_alone(sock: socket.socket) -> bool:
    """Still open and not answered: the proxy has said nothing on it."""
    sock.setblocking(False)
    try:
        sock.recv(1)  # an answer or EOF: the proxy turned it away
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()
    time.sleep(0.3)  # let the proxy see them go before the next case counts


@pytest.mark.parametrize("flood_source", ["127.0.0.1", "127.0.0.3", "127.0.1.7"])
@pytest.mark.parametrize("over", [1, 3])
@pytest.mark.parametrize("kind", ["connect", "plain"])
def test_one_source_meets_its_own_cap_and_an_agent_elsewhere_gets_in(
    world: World, fproxy: ProxyProcess, flood_source: str, over: int, kind: str
) -> None:
    before = len(connection_events(fproxy, "too_many_connections", n=0, timeout=0))
    silent = [_open(fproxy, flood_source) for _ in range(PER_SOURCE)]
    refused: list[socket.socket] = []
    agent: list[socket.socket] = []
    try:
        time.sleep(0.2)
        for _ in range(over):
            refused.append(_open(fproxy, flood_source))
            answer = _turned_away(refused[-1])
            assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
            assert b"too_many_connections" in answer
        # the source's own sockets were not evicted for its newcomers
        assert all(_left_alone(s) for s in silent)
        # alice, on another address, is not this source: she gets in, twice
        for _ in range(2):
            sock, status = AGENT[kind](fproxy, world, AGENT_SOURCE)
            agent.append(sock)
            assert status == 200
        events = connection_events(fproxy, "too_many_connections", n=before + over)
        assert len(events) == before + over
        for e in events[before:]:
            assert e["status"] == 429 and e["agent"] is None
            assert "from one source" in e["error"]
    finally:
        _close_all(silent + refused + agent)


@pytest.mark.parametrize("sources", [3, 8])
@pytest.mark.parametrize("newcomers", [1, 4])
@pytest.mark.parametrize("kind", ["connect", "plain"])
def test_a_full_pool_evicts_its_oldest_silent_socket_for_an_agent(
    world: World, fproxy: ProxyProcess, sources: int, newcomers: int, kind: str
) -> None:
    before = len(connection_events(fproxy, "too_many_connections", n=0, timeout=0))
    # the pool filled from several addresses, none over its own cap (oldest first)
    addrs = [f"127.0.2.{i + 1}" for i in range(sources)]
    flood = [_open(fproxy, addrs[i % sources]) for i in range(POOL)]
    refill: list[socket.socket] = []
    agent: list[socket.socket] = []
    try:
        time.sleep(0.2)
        for n in range(newcomers):
            sock, status = AGENT[kind](fproxy, world, AGENT_SOURCE)
            agent.append(sock)
            assert status == 200  # the old code answered 429 too_many_connections here
            # the oldest flood socket made room for her, told why
            answer = _turned_away(flood[n])
            assert answer.startswith(b"HTTP/1.1 429") and b"too_many_connections" in answer
            # the flood tops the pool up again (her connection left it once authenticated)
            refill.append(_open(fproxy, f"127.0.2.{100 + n}"))
        time.sleep(0.2)
        assert all(_left_alone(s) for s in flood[newcomers:] + refill)  # only as many as needed
        events = connection_events(fproxy, "too_many_connections", n=before + newcomers)
        assert len(events) == before + newcomers
        for e in events[before:]:
            assert e["status"] == 429 and e["agent"] is None
            assert e["error"].startswith("too_many_connections: evicted")
    finally:
        _close_all(flood + refill + agent)


@pytest.mark.parametrize("begun", [1, 3])
def test_sockets_that_began_a_head_are_evicted_after_silent_ones(
    world: World, fproxy: ProxyProcess, begun: int
) -> None:
    # the oldest sockets are busy with a (slow) head: the oldest silent one goes first
    addrs = [f"127.0.3.{i + 1}" for i in range(POOL)]
    flood = [_open(fproxy, a) for a in addrs]
    agent: list[socket.socket] = []
    try:
        for s in flood[:begun]:
            s.sendall(b"GET http://localhost/ HTTP/1.1\r\nHost: loc")
        time.sleep(0.3)
        sock, status = AGENT["connect"](fproxy, world, AGENT_SOURCE)
        agent.append(sock)
        assert status == 200
        assert _turned_away(flood[begun]).startswith(b"HTTP/1.1 429")
        assert all(_left_alone(s) for s in flood[:begun] + flood[begun + 1 :])
    finally:
        _close_all(flood + agent)


@pytest.fixture(scope="module")
def wide_proxy(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("unauth-flood-wide")
    p = proxy_for(
        world,
        tmp,
        "--max-conns-unauthenticated",
        str(WIDE_POOL),
        "--max-conns-unauthenticated-per-source",
        str(PER_SOURCE),
        data_file=data_with_rules(world, tmp, []),
    )
    yield p
    p.stop()


# the flooder runs in a process of its own: a thread would share the GIL with the agent's
# client and could stall it between its connect and its head, which no real flood can do
FLOODER = """
import socket, sys, time
port, until = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
held, i = [], 0
while time.monotonic() < until:
    try:
        source = (f"127.0.4.{i % 24 + 1}", 0)
        held.append(socket.create_connection(("127.0.0.1", port), source_address=source))
    except OSError:
        pass
    i += 1
    if len(held) > 400:  # the flooder's own file descriptors
        for s in held[:200]:
            s.close()
        del held[:200]
    time.sleep(0.002)
"""


@pytest.mark.parametrize("kind", ["connect", "plain"])
def test_a_sustained_flood_from_many_sources_does_not_lock_an_agent_out(
    world: World, wide_proxy: ProxyProcess, kind: str
) -> None:
    """ops_dos_unauth2, harsher: sockets re-opened without pause from 24 addresses, so the
    pool is refilled many times a second. (Oldest-first eviction loses only to a flood that
    refills the whole pool between an agent's head reaching the proxy's host and the
    connection being accepted.)"""
    p = wide_proxy
    before = len(connection_events(p, "too_many_connections", n=0, timeout=0))
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER, str(p.port), "4"])
    statuses: list[int] = []
    agent: list[socket.socket] = []
    try:
        time.sleep(0.7)  # the pool is full by now
        for _ in range(10):
            sock, status = AGENT[kind](p, world, AGENT_SOURCE)
            agent.append(sock)
            statuses.append(status)
            time.sleep(0.05)
    finally:
        flooder.wait(10)
        _close_all(agent)
    assert statuses == [200] * 10
    evicted = connection_events(p, "too_many_connections", n=before + WIDE_POOL)[before:]
    assert len(evicted) >= WIDE_POOL  # the flood churned the pool
    assert any(e["error"].startswith("too_many_connections: evicted") for e in evicted)


@pytest.mark.parametrize(
    ("peer", "same_source_as"),
    [
        ("2001:db8:1:2::5", "2001:db8:1:2:ffff::9"),  # one /64 is one source
        ("::ffff:10.0.0.7", "10.0.0.7"),  # an IPv4-mapped address is that IPv4 address
        ("fe80::1%eth0", "fe80::2"),  # a zone index is not an address of its own
    ],
)
def test_addresses_of_one_source_share_one_count(peer: str, same_source_as: str) -> None:
    def client(host: str) -> connection.Client:
        return connection.Client(peername=(host, 40000), sockname=("::1", 8080), timestamp_start=0)

    assert source_of(client(peer)) == source_of(client(same_source_as))
    assert source_of(client(peer)) != source_of(client("2001:db8:1:3::5"))
