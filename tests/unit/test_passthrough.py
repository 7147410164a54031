"""Passthrough on mitmproxy's test flows and layers: which connections become a plain TCP
relay, how relayed bytes are counted (and not kept), and how the kill switch closes a tunnel
on its next chunk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import connection, options, tcp
from mitmproxy.proxy import context, layer, layers
from mitmproxy.test import taddons, tflow

from egress.identity.model import Identity
from egress.kube.agents import KillSet
from egress.proxy import flowstate
from egress.proxy.addons.passthrough import Passthrough
from egress.proxy.flowstate import ConnRegistry

ALICE = Identity("alice@example.com", "db-bot", "ns")


def _next_layer(client: connection.Client) -> layer.NextLayer:
    nl = layer.NextLayer(context.Context(client, options.Options()))
    nl.layer = None
    return nl


@pytest.mark.parametrize(
    "passthrough, started, becomes_tcp",
    [(True, False, True), (True, True, False), (False, False, False)],
)
def test_next_layer_relays_only_a_fresh_passthrough(
    passthrough: bool, started: bool, becomes_tcp: bool
) -> None:
    conns = ConnRegistry()
    client = tflow.tclient_conn()
    state = conns.get(client)
    state.passthrough, state.passthrough_started = passthrough, started
    nl = _next_layer(client)
    Passthrough(conns).next_layer(nl)
    assert isinstance(nl.layer, layers.TCPLayer) is becomes_tcp
    assert state.passthrough_started is (passthrough or started)


def test_next_layer_ignores_unknown_connections() -> None:
    nl = _next_layer(tflow.tclient_conn())
    Passthrough(ConnRegistry()).next_layer(nl)
    assert nl.layer is None


def test_next_layer_replaces_once_per_connection() -> None:
    conns = ConnRegistry()
    client = tflow.tclient_conn()
    conns.get(client).passthrough = True
    addon = Passthrough(conns)
    first, second = _next_layer(client), _next_layer(client)
    addon.next_layer(first)
    addon.next_layer(second)  # e.g. the layer below TCP asks again: leave it alone
    assert isinstance(first.layer, layers.TCPLayer) and second.layer is None


def _tcpflow() -> tcp.TCPFlow:
    f = tflow.ttcpflow()
    f.messages.clear()  # the test flow comes with two messages already relayed
    return f


def _message(flow: tcp.TCPFlow, from_client: bool, data: bytes) -> None:
    flow.messages.append(tcp.TCPMessage(from_client, data))  # type: ignore[no-untyped-call]


def test_bytes_counted_each_way_and_not_kept() -> None:
    addon = Passthrough(ConnRegistry())
    f = _tcpflow()
    addon.tcp_start(f)
    assert f.metadata[flowstate.TUNNEL_BYTES] == [0, 0]
    _message(f, True, b"hello")
    addon.tcp_message(f)
    _message(f, False, b"welcome!")
    _message(f, False, b"xy")
    addon.tcp_message(f)
    assert f.metadata[flowstate.TUNNEL_BYTES] == [5, 10]
    assert f.messages == []


def test_counting_starts_even_without_tcp_start() -> None:
    f = _tcpflow()
    _message(f, True, b"abc")
    Passthrough(ConnRegistry()).tcp_message(f)
    assert f.metadata[flowstate.TUNNEL_BYTES] == [3, 0]


class _Handler:
    def __init__(self) -> None:
        self.closed: list[connection.Client] = []

    def close_connection(self, conn: connection.Client) -> None:
        self.closed.append(conn)


class _ProxyServer:
    """Stands in for mitmproxy's proxyserver addon: live handlers by client id."""

    name = "proxyserver"

    def __init__(self) -> None:
        self.connections: dict[str, Any] = {}


@pytest.fixture
def server() -> Iterator[_ProxyServer]:
    s = _ProxyServer()
    with taddons.context(s):  # type: ignore[no-untyped-call]
        yield s


def _tunnel(conns: ConnRegistry, server: _ProxyServer, who: Identity) -> tuple[Any, _Handler]:
    f = _tcpflow()
    conns.get(f.client_conn).tunnel = {"identity": who}
    handler = _Handler()
    server.connections[f.client_conn.id] = handler
    return f, handler


def test_kill_switch_closes_the_tunnel_on_its_next_chunk(server: _ProxyServer) -> None:
    conns, kills = ConnRegistry(), KillSet()
    addon = Passthrough(conns, kills)
    f, handler = _tunnel(conns, server, ALICE)
    addon.tcp_start(f)
    _message(f, True, b"before")
    addon.tcp_message(f)
    kills.replace({f"{ALICE.user}/{ALICE.agent}"})
    _message(f, True, b"after the kill")
    chunk = f.messages[-1]
    addon.tcp_message(f)
    assert f.metadata[flowstate.TUNNEL_KILLED] is True
    assert chunk.content == b""  # mitmproxy would still relay the chunk: emptied
    assert f.messages == [] and handler.closed == [f.client_conn]
    assert f.metadata[flowstate.TUNNEL_BYTES] == [6, 0]  # the refused chunk is not counted


def test_kill_of_another_agent_leaves_the_tunnel_open(server: _ProxyServer) -> None:
    conns, kills = ConnRegistry(), KillSet()
    kills.replace({"bob@example.com/db-bot", f"{ALICE.user}/other"})
    f, handler = _tunnel(conns, server, ALICE)
    _message(f, False, b"data")
    Passthrough(conns, kills).tcp_message(f)
    assert flowstate.TUNNEL_KILLED not in f.metadata and handler.closed == []
    assert f.metadata[flowstate.TUNNEL_BYTES] == [0, 4]


def test_without_kill_watch_nothing_is_closed(server: _ProxyServer) -> None:
    conns = ConnRegistry()
    f, handler = _tunnel(conns, server, ALICE)
    _message(f, True, b"data")
    Passthrough(conns, None).tcp_message(f)
    assert handler.closed == [] and f.metadata[flowstate.TUNNEL_BYTES] == [4, 0]


def test_killed_tunnel_whose_handler_is_gone(server: _ProxyServer) -> None:
    conns, kills = ConnRegistry(), KillSet()
    kills.replace({f"{ALICE.user}/{ALICE.agent}"})
    f, _ = _tunnel(conns, server, ALICE)
    server.connections.clear()  # the connection closed meanwhile
    _message(f, True, b"data")
    Passthrough(conns, kills).tcp_message(f)
    assert f.metadata[flowstate.TUNNEL_KILLED] is True and f.messages == []


def test_tunnel_without_identity_is_not_killed(server: _ProxyServer) -> None:
    conns, kills = ConnRegistry(), KillSet()
    kills.replace({f"{ALICE.user}/{ALICE.agent}"})
    f = _tcpflow()  # no connection state at all
    _message(f, True, b"data")
    Passthrough(conns, kills).tcp_message(f)
    assert flowstate.TUNNEL_KILLED not in f.metadata
    assert f.metadata[flowstate.TUNNEL_BYTES] == [4, 0]
