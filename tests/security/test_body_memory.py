"""Bounds on body memory: the bytes of bodies the proxy buffers, summed over all flows.

The attack: many clients upload (or make the proxy download) large bodies at once, so the
proxy buffers them all. Past ``--body-memory-limit`` an upload is refused 413 and a buffered
answer replaced by 502, both ``body_too_large`` with a decision event; the proxy's RSS
high-water mark (VmHWM) stays far below the sum offered.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import World
from tests.support.bulk_origin import BulkOrigin, start_bulk_origin
from tests.support.clients import open_tunnel
from tests.support.liveconns import data_with_rules
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    proxy_for,
    read_http_response,
)

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


@pytest.fixture(scope="module")
def bulk() -> Iterator[BulkOrigin]:
    origin = start_bulk_origin()
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def mproxy(
    world: World, bulk: BulkOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyProcess]:
    """Default caps, a 32 MB body budget (the per-body limit stays at its 64 MB default)."""
    tmp = tmp_path_factory.mktemp("memory")
    rule = {
        "id": "bulk",
        "hosts": ["localhost"],
        "ports": [bulk.port],
        "schemes": ["http"],
        "methods": ["GET"],
    }
    data = data_with_rules(world, tmp, [rule])
    p = proxy_for(world, tmp, "--body-memory-limit", "32m", data_file=data)
    yield p
    p.stop()


def _vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _upload(p: ProxyProcess, world: World, path: str, size: int, chunked: bool) -> int:
    """POST ``size`` bytes through the proxy (plain HTTP, absolute form); the status, 0 if the
    proxy closed without an answer."""
    sock = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        f"POST http://localhost:{world.plain.port}{path} HTTP/1.1\r\n"
        f"Host: localhost:{world.plain.port}\r\n"
        f"Proxy-Authorization: {basic(world.alice.name, world.alice.token)}\r\n"
        f"{framing}\r\n\r\n"
    ).encode()
    block = b"x" * MB
    try:
        sock.sendall(head)
        for _ in range(size // MB):
            sock.sendall(b"%x\r\n%b\r\n" % (len(block), block) if chunked else block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # refused early: the answer is already waiting
    try:
        answer = read_http_response(sock)
    except OSError:
        answer = b""
    finally:
        sock.close()
    if not answer:
        return 0
    status, headers, body = parse_response(answer)
    if status == 413:  # the proxy's own refusal: reason code and decision id, like all others
        assert headers["x-egress-reason"] == "body_too_large"
        assert orjson.loads(body)["decision_id"] == headers["x-egress-decision-id"]
    return status


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_concurrent_large_uploads_stay_within_the_body_budget(
    world: World, mproxy: ProxyProcess, chunked: bool
) -> None:
    n, size = 10, 24 * MB  # 240 MB offered at once; the budget is 32 MB
    hwm_before = _vm_hwm_kb(mproxy.proc.pid)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(_upload(mproxy, world, "/api/big", size, chunked))
        )
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    growth_mb = (_vm_hwm_kb(mproxy.proc.pid) - hwm_before) / 1024
    print(f"VmHWM growth {growth_mb:.0f} MB for {n} x {size // MB} MB; statuses {statuses}")
    assert len(statuses) == n
    assert 413 in statuses, statuses  # the budget refused some
    assert set(statuses) <= {200, 413, 0}, statuses
    assert growth_mb < n * size / MB / 2, f"RSS high-water mark grew {growth_mb:.0f} MB"
    refused = [
        e
        for e in mproxy.events()
        if e["result"]["reason"] == "body_too_large" and e["kind"] == "request"
    ]
    assert refused and all(e["status"] == 413 for e in refused)
    assert all(e["agent"] is None or e["agent"]["user"] == "alice@example.com" for e in refused)
    # the budget is released as flows end: one upload of the same size fits again
    assert _upload(mproxy, world, "/api/after", size, chunked) == 200
    if not chunked:  # the test origin reads Content-Length bodies only
        assert len(world.plain.seen[-1].body) == size


def _h2_post_head(p: ProxyProcess, world: World, size: int) -> tuple[int, dict, bool]:
    """On an HTTP/2 tunnel, send only the head of a POST announcing ``size`` bytes; the
    status and headers answered, and whether a GET on the same connection still works."""
    import h2.events

    from tests.support.liveconns import h2_get, open_h2_keepalive

    live = open_h2_keepalive(p, world.alice, world.origin.port)
    conn, tls = live.h2, live.sock
    authority = f"localhost:{world.origin.port}"
    try:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "https"),
                (":authority", authority),
                (":path", "/api/big"),
                ("content-length", str(size)),
            ],
        )
        tls.sendall(conn.data_to_send())
        status, headers, ended = 0, {}, False
        while not ended:
            data = tls.recv(65536)
            assert data, "connection closed"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == stream:
                    headers = {k.decode(): v.decode() for k, v in ev.headers}
                    status = int(headers[":status"])
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    ended = ended or ev.stream_id == stream
            tls.sendall(conn.data_to_send())
        still_works = h2_get(tls, conn, "/api/after-413", authority) == 200
    finally:
        live.close()
    return status, headers, still_works


def _h1_post_head(p: ProxyProcess, world: World, size: int) -> tuple[int, dict, bool]:
    host = f"localhost:{world.origin.port}"
    t = open_tunnel(p, world.alice, host, "localhost")
    try:
        t.sock.sendall(
            f"POST /api/big HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n".encode()
        )
        status, headers, _ = parse_response(read_http_response(t.sock))
        closed = t.sock.recv(1) == b""
    finally:
        t.close()
    return status, headers, not closed


@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
def test_upload_larger_than_the_budget_is_refused_before_its_body(
    world: World, mproxy: ProxyProcess, protocol: str
) -> None:
    """40 MB announced: within --body-size-limit (64m), beyond the 32 MB budget. Refused on
    the head alone, nothing read or sent upstream; HTTP/1 closes the connection, HTTP/2
    resets only that stream."""
    seen = len(world.origin.seen)
    send = _h1_post_head if protocol == "http/1.1" else _h2_post_head
    status, headers, still_usable = send(mproxy, world, 40 * MB)
    assert status == 413
    assert headers["x-egress-reason"] == "body_too_large"
    event = mproxy.event_for(headers["x-egress-decision-id"])
    assert event["status"] == 413 and event["result"]["reason"] == "body_too_large"
    assert event["agent"]["user"] == "alice@example.com"
    assert "/api/big" not in [s.path for s in world.origin.seen[seen:]]
    assert still_usable == (protocol == "h2")


def _download(p: ProxyProcess, port: int, size: int, chunked: bool) -> tuple[int, int]:
    """GET ``size`` bytes from the bulk origin through the proxy: (status, body bytes read)."""
    sock = socket.create_connection(("127.0.0.1", p.port), timeout=60)
    query = "?chunked=1" if chunked else ""
    try:
        sock.sendall(
            (
                f"GET http://localhost:{port}/bytes/{size}{query} HTTP/1.1\r\n"
                f"Host: localhost:{port}\r\n"
                f"Proxy-Authorization: {basic('triage-bot', _ALICE_TOKEN[0])}\r\n\r\n"
            ).encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return 0, 0
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status, headers, _ = parse_response(head + b"\r\n\r\n")
        if status != 200:
            length = int(headers.get("content-length", "0"))
            while len(body) < length:
                body += sock.recv(65536)
            assert headers["x-egress-reason"] == "body_too_large"
            assert orjson.loads(body)["reason"] == "body_too_large"
            return status, 0
        if "content-length" not in headers:  # streamed to us chunked: count the payload
            while not body.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                body += chunk
            return status, _dechunked_length(body)
        got, length = len(body), int(headers["content-length"])
        while got < length:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        return status, got
    finally:
        sock.close()


def _dechunked_length(body: bytes) -> int:
    total, pos = 0, 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return total
        total += size
        pos = line_end + 2 + size + 2


_ALICE_TOKEN: list[str] = []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_concurrent_downloads_stay_within_the_body_budget(
    world: World, bulk: BulkOrigin, mproxy: ProxyProcess, chunked: bool
) -> None:
    """A response is buffered whole to be scrubbed (today: up to 8 MB with a Content-Length;
    bigger or chunked ones are scrubbed as a stream): 40 answers of 7 MB at once would hold
    280 MB, more with mitmproxy's copies. Past the budget an answer is replaced by the
    proxy's 502 body_too_large (no byte of it reaches the agent); those that fit arrive
    whole."""
    _ALICE_TOKEN[:] = [world.alice.token]
    n, size = 40, 7 * MB
    hwm_before = _vm_hwm_kb(mproxy.proc.pid)
    results: list[tuple[int, int]] = []
    threads = [
        threading.Thread(target=lambda: results.append(_download(mproxy, bulk.port, size, chunked)))
        for _ in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    growth_mb = (_vm_hwm_kb(mproxy.proc.pid) - hwm_before) / 1024
    statuses = sorted(s for s, _ in results)
    print(f"VmHWM growth {growth_mb:.0f} MB for {n} x {size // MB} MB downloads; {statuses}")
    assert len(results) == n
    assert set(statuses) <= {200, 502}, statuses
    assert all(got == size for s, got in results if s == 200), results
    assert growth_mb < n * size / MB / 2, f"RSS high-water mark grew {growth_mb:.0f} MB"
    if 502 in statuses:
        refused = [e for e in mproxy.events() if e["result"]["reason"] == "body_too_large"]
        assert any(e["status"] == 502 for e in refused)
    # released as flows end: one download of the same size fits again
    assert _download(mproxy, bulk.port, size, chunked) == (200, size)
