"""HTTP/1.1, HTTP/2, plain HTTP, WebSocket, curl: all decided like any request."""

from __future__ import annotations

import base64
import os

import pytest

from tests.conftest import GITHUB_VALUE, World
from tests.support.clients import curl, get, http_client, open_tunnel
from tests.support.proxy import ProxyProcess, parse_response, read_http_response

pytestmark = pytest.mark.e2e


def test_http2_client(world: World, proxy: ProxyProcess) -> None:
    # curl offers h2 first inside the tunnel (httpx/httpcore offer http/1.1 first, and
    # mitmproxy honours the client's preference), so curl is the HTTP/2 client here
    ph = world.placeholders["github"]
    ok = curl(
        proxy,
        world.alice,
        f"{world.origin.url}/api/h2",
        "--http2",
        "-H",
        f"Authorization: Bearer {ph}",
    )
    assert ok.returncode == 0, ok.stderr
    assert "\nHTTP/2 200" in ok.stdout
    assert world.origin.seen[-1].path == "/api/h2"
    assert world.origin.seen[-1].headers["authorization"] == f"Bearer {GITHUB_VALUE}"
    assert GITHUB_VALUE not in ok.stdout
    denied = curl(proxy, world.alice, f"{world.origin.url}/admin", "--http2")
    assert "\nHTTP/2 403" in denied.stdout and "path_not_allowed" in denied.stdout


def test_http2_authority_mismatch(world: World, proxy: ProxyProcess) -> None:
    # an HTTP/2 request whose :authority names another host inside the tunnel
    import h2.connection
    import h2.events

    t = open_tunnel_h2(proxy, world, "localhost")
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    t.sendall(conn.data_to_send())
    conn.send_headers(
        1,
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", f"127.0.0.1:{world.origin.port}"),
            (":path", "/api/x"),
        ],
        end_stream=True,
    )
    t.sendall(conn.data_to_send())
    status = None
    while status is None:
        data = t.recv(65536)
        assert data, "connection closed"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[b":status"]
        t.sendall(conn.data_to_send())
    t.close()
    assert status == b"421"


def open_tunnel_h2(proxy: ProxyProcess, world: World, sni: str):
    from tests.support.proxy import basic, raw_connect

    sock, answer = raw_connect(
        proxy.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
    )
    assert parse_response(answer)[0] == 200
    ctx = proxy.client_context()
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(sock, server_hostname=sni)
    assert tls.selected_alpn_protocol() == "h2"
    return tls


def test_plain_http_with_swap(world: World, proxy: ProxyProcess) -> None:
    # the secret does not allow clear text: refused (tests/e2e/test_plaintext_secrets.py)
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(
            f"http://localhost:{world.plain.port}/api/plain",
            headers={"Authorization": f"token {ph}"},
        )
        denied = c.get(f"http://localhost:{world.plain.port}/other")
    assert r.status_code == 403 and r.json()["reason"] == "secret_plaintext_refused"
    assert GITHUB_VALUE not in r.text
    assert denied.status_code == 403 and denied.json()["reason"] == "path_not_allowed"


def _ws_upgrade(path: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return get(
        path,
        f"localhost:{port}",
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
        },
    )


def test_websocket_upgrade_allowed_and_echoes(world: World, proxy: ProxyProcess) -> None:
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        t.sock.sendall(_ws_upgrade("/ws", world.origin.port))
        status, headers, _ = parse_response(read_http_response(t.sock))
        assert status == 101
        payload = b"hello"
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        t.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        frame = t.sock.recv(1024)
    finally:
        t.close()
    assert frame[0] == 0x81
    assert frame[2:] == b"echo:hello"
    event = proxy.event_for(headers["x-egress-decision-id"])
    assert event["status"] == 101 and event["result"]["allow"] is True


def test_websocket_upgrade_to_denied_path(world: World, proxy: ProxyProcess) -> None:
    before = len(world.origin.seen)
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        t.sock.sendall(_ws_upgrade("/socket-not-allowed", world.origin.port))
        status, _, body = parse_response(read_http_response(t.sock))
    finally:
        t.close()
    assert status == 403
    assert b"path_not_allowed" in body
    assert len(world.origin.seen) == before


def test_curl_through_proxy(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    out = curl(
        proxy, world.alice, f"{world.origin.url}/api/curl", "-H", f"Authorization: Bearer {ph}"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("HTTP/1.1 200 Connection established")
    assert "\nHTTP/1.1 200" in out.stdout or "\nHTTP/2 200" in out.stdout
    assert world.origin.seen[-1].path == "/api/curl"
    assert GITHUB_VALUE not in out.stdout
    denied = curl(proxy, world.alice, f"{world.origin.url}/nope")
    assert "403" in denied.stdout and "path_not_allowed" in denied.stdout


def test_upstream_cannot_forge_proxy_headers(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/forge")
    assert r.status_code == 200
    assert "x-egress-reason" not in r.headers
    assert r.headers["x-egress-decision-id"] != "forged-by-origin"
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["request"]["path"] == "/forge"


def test_upstream_connection_is_reused_for_the_checked_address(
    world: World, proxy: ProxyProcess
) -> None:
    before = world.origin.connections
    with http_client(proxy, world.alice) as c:
        statuses = [c.get(f"{world.origin.url}/api/reuse{i}").status_code for i in range(5)]
    assert statuses == [200] * 5
    assert world.origin.connections - before == 1  # dialled once, by IP, reused by name
