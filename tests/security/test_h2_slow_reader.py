"""An HTTP/2 agent that never opens its flow-control window cannot make the proxy hold answers.

Red team N6 (round 2): one agent opened 100 streams, each for a large streamed answer, and
never sent WINDOW_UPDATE. mitmproxy kept reading the answers from upstream and queued them in
its HTTP/2 send buffers: 2.7 GB of proxy memory from two connections, still growing after the
agent left. Back-pressure now stops reading an upstream socket while more than 1 MiB of that
client's answers wait for its window; TCP then slows the origin. Real sockets: a TLS origin
(tests/support/bulk_origin.py) streaming 32 MB answers, an h2 agent through a CONNECT tunnel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from tests.conftest import World
from tests.support.bulk_origin import BulkOrigin, start_bulk_origin
from tests.support.liveconns import data_with_rules
from tests.support.proxy import ProxyProcess, basic, parse_response, proxy_for, raw_connect

pytestmark = pytest.mark.e2e

ANSWER = 32 * 1024 * 1024
STREAMS = 24


@pytest.fixture(scope="module")
def tls_bulk(world: World) -> Iterator[BulkOrigin]:
    leaf = world.test_ca.issue("bulk-origin", ["localhost"], ["127.0.0.1"])
    origin = start_bulk_origin(leaf.cert_path, leaf.key_path)
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def sproxy(
    world: World, tls_bulk: BulkOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    tmp = tmp_path_factory.mktemp("h2slow")
    rule = {"id": "bulk", "hosts": ["localhost"], "ports": [tls_bulk.port], "methods": ["GET"]}
    p = proxy_for(world, tmp, data_file=data_with_rules(world, tmp, [rule]))
    yield p
    p.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def _stalled_h2(
    p: ProxyProcess,
    world: World,
    port: int,
    chunked: bool,
    streams: int = STREAMS,
    size: int = ANSWER,
):
    """An h2 connection with ``streams`` answers requested, its window not opened yet."""
    sock, answer = raw_connect(
        p.port, f"localhost:{port}", basic(world.alice.name, world.alice.token)
    )
    assert parse_response(answer)[0] == 200, answer
    ctx = p.client_context()
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    assert tls.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    query = "?chunked=1" if chunked else ""
    for _ in range(streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [(":method", "GET"), (":scheme", "https"), (":authority", f"localhost:{port}"),
             (":path", f"/bytes/{size}{query}")],
            end_stream=True,
        )  # fmt: skip
    tls.sendall(conn.data_to_send())
    return tls, conn


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "length"])
def test_answers_to_a_shut_window_are_not_buffered(
    world: World, sproxy: ProxyProcess, tls_bulk: BulkOrigin, chunked: bool
) -> None:
    pid = sproxy.proc.pid
    before = _rss_mb(pid)
    tls, conn = _stalled_h2(sproxy, world, tls_bulk.port, chunked)
    tls.settimeout(0.2)
    peak = before
    received = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            data = tls.recv(65536)
        except TimeoutError:
            data = b""
        if data:  # read what comes (the window stays shut: no WINDOW_UPDATE is ever sent)
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    received += len(ev.data)
        peak = max(peak, _rss_mb(pid))
    tls.close()
    offered = STREAMS * ANSWER / (1024 * 1024)
    print(f"rss {before:.0f} -> peak {peak:.0f} MB; {offered:.0f} MB offered, {received} B read")
    assert received <= 65535 * 2  # the agent only ever got its window's worth
    # the old proxy took in hundreds of MB here (~1 GB within these 8 s on this machine)
    assert peak - before < 48, f"{peak - before:.0f} MB held for a shut window"


def test_a_client_that_reads_gets_every_byte(
    world: World, sproxy: ProxyProcess, tls_bulk: BulkOrigin
) -> None:
    """The throttle only waits for the window: a client that opens it gets whole answers."""
    tls, conn = _stalled_h2(sproxy, world, tls_bulk.port, chunked=True, streams=8, size=8 << 20)
    tls.settimeout(10)
    got: dict[int, int] = {}
    ended: set[int] = set()
    deadline = time.monotonic() + 120
    while len(ended) < 8 and time.monotonic() < deadline:
        data = tls.recv(1 << 20)
        assert data, "connection closed early"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                got[ev.stream_id] = got.get(ev.stream_id, 0) + len(ev.data)
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        tls.sendall(conn.data_to_send())
    tls.close()
    assert len(ended) == 8
    assert all(n == 8 << 20 for n in got.values()) and len(got) == 8
