"""Every answer the proxy gives has its decision event, even those given before a flow exists
(issue 13, item 12): the 400 mitmproxy's parser answers to a request line it cannot read, and
the head-size guard's 431. Sent raw inside a tunnel (the agent is known from its CONNECT) and
as plain HTTP to the proxy (no identity yet); the event names the client address.
"""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.conftest import World
from tests.support.clients import open_tunnel
from tests.support.proxy import ProxyProcess, parse_response, read_http_response

pytestmark = pytest.mark.e2e

BAD_REQUEST_LINES = {
    "tab_in_target": b"GET /api/a\tb HTTP/1.1",
    "bare_cr_in_target": b"GET /api/a\rb HTTP/1.1",
    "extra_token": b"GET /api/x HTTP/1.1 extra",
    "missing_version": b"GET /api/x",
    "only_method": b"GET",
    "bad_version": b"GET /api/x HTTX/1.1",
    "version_garbage": b"GET /api/x HTTP/one",
    "no_target": b"GET  HTTP/1.1",
}


def _exchange(sock: socket.socket, raw: bytes) -> bytes:
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.sendall(raw)
    try:
        return read_http_response(sock)
    except OSError:
        return b""


def _new_events(proxy: ProxyProcess, n: int) -> list[dict]:
    proxy.wait_events(n + 1)
    time.sleep(0.2)  # and nothing more than the one event
    return proxy.events()[n:]


@pytest.mark.parametrize("name", sorted(BAD_REQUEST_LINES))
@pytest.mark.parametrize("via", ["tunnel", "plain"])
def test_parser_refusal_has_its_event(world: World, proxy: ProxyProcess, name: str, via) -> None:
    host = f"localhost:{world.origin.port}" if via == "tunnel" else f"localhost:{world.plain.port}"
    raw = BAD_REQUEST_LINES[name] + b"\r\nHost: " + host.encode() + b"\r\n\r\n"
    before = (len(world.origin.seen), len(world.plain.seen))
    n = len(proxy.events())
    if via == "tunnel":
        t = open_tunnel(proxy, world.alice, host, "localhost")
        sock = t.sock
    else:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    with sock:
        client = "{}:{}".format(*sock.getsockname()[:2])
        answer = _exchange(sock, raw)
    status = parse_response(answer)[0] if answer else None
    assert status == 400, answer[:200]
    assert (len(world.origin.seen), len(world.plain.seen)) == before
    events = _new_events(proxy, n)
    assert len(events) == 1, events
    event = events[0]
    assert (event["status"], event["result"]["allow"], event["result"]["reason"]) == (
        400,
        False,
        "http_malformed",
    )
    assert event["request"]["client"] == client
    if via == "tunnel":
        assert event["agent"]["user"] == world.alice.user
        assert (event["request"]["host"], event["request"]["port"]) == (
            "localhost",
            world.origin.port,
        )
    else:
        assert event["agent"] is None


@pytest.mark.parametrize("via", ["tunnel", "plain"])
def test_head_size_guard_431_has_its_event(world: World, proxy: ProxyProcess, via) -> None:
    n = len(proxy.events())
    if via == "tunnel":
        sock = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost").sock
        head = b"GET /api/x HTTP/1.1\r\nHost: localhost\r\n"
    else:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        head = b"GET http://localhost:%d/api/x HTTP/1.1\r\n" % world.plain.port
    reply = b""
    with sock:
        client = "{}:{}".format(*sock.getsockname()[:2])
        sock.settimeout(5)
        try:
            sock.sendall(head)
            for _ in range(40):  # 40 x 8 kB, past the 96 kB bound; never the blank line
                sock.sendall(b"X-Pad: " + b"a" * 8000 + b"\r\n")
        except OSError:
            pass
        with contextlib.suppress(OSError):
            reply = sock.recv(4096)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431")
    events = _new_events(proxy, n)
    assert [(e["status"], e["result"]["reason"]) for e in events] == [(431, "headers_too_large")]
    assert events[0]["request"]["client"] == client
    if via == "tunnel":
        assert events[0]["agent"]["user"] == world.alice.user
    else:
        assert events[0]["agent"] is None
