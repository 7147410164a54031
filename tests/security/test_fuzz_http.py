"""Fuzzed HTTP/1 request bytes through the live proxy, inside tunnels and as plain proxy requests.

Properties, per example and overall: the proxy never crashes and keeps serving; nothing reaches
the origin without an allowing decision event; every answer that carries a decision id has
exactly that event in the log. `make test` runs the fast profile; `make fuzz` the deep one
(HYPOTHESIS_PROFILE=deep).
"""

from __future__ import annotations

import socket
import ssl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess, basic, raw_connect

pytestmark = pytest.mark.e2e

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
NASTY = ["\x00", "\r", "\n", " ", "\t", ":", "\x7f", "\x0b", "\xff", "é"]

methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "PRI", "get", ""]),
    st.text(alphabet=TCHAR, min_size=1, max_size=8),
)
targets = st.one_of(
    st.sampled_from(
        [
            "/api/x",
            "/admin",
            "*",
            "/api/../admin",
            "/api/%2e%2e/x",
            "//api",
            "http://localhost:{P}/api/x",
            "https://evil.example/api/x",
            "",
            "/api/x?a=b#frag",
            "/api/\x00",
            "/" + "a" * 3000,
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
versions = st.sampled_from(
    ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "http/1.1", "", "HTTP/1.1 extra", "HTTP/0.9"]
)
header_names = st.one_of(
    st.sampled_from(
        [
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Upgrade",
            "Proxy-Authorization",
            "X-Agent",
            "Expect",
            "TE",
            "Authorization",
        ]
    ),
    st.text(alphabet=TCHAR, min_size=1, max_size=12),
    st.text(alphabet=st.sampled_from(list(TCHAR) + NASTY), min_size=0, max_size=6),
)
header_values = st.one_of(
    st.sampled_from(
        [
            "localhost:{P}",
            "chunked",
            "0",
            "5",
            "-1",
            "chunked, gzip",
            "100-continue",
            "close",
            "keep-alive",
            "websocket",
            "Bearer egph" + "A" * 40,
            "",
        ]
    ),
    st.text(alphabet=st.sampled_from(list("abc019 ,;=") + NASTY), max_size=20),
)
bodies = st.one_of(
    st.just(b""),
    st.sampled_from([b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"hello"]),
    st.binary(max_size=64),
)


@st.composite
def requests(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=300))  # plain noise
    line = f"{draw(methods)} {draw(targets)} {draw(versions)}"
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    if draw(st.booleans()):
        headers.insert(0, ("Host", "localhost:{P}"))
    head = line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + draw(bodies)


def _exchange(sock: socket.socket | ssl.SSLSocket, data: bytes, wait: float = 2.0) -> bytes:
    sock.settimeout(wait)
    try:
        sock.sendall(data)
        out = b""
        while len(out) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                break
        return out
    except (OSError, ssl.SSLError):
        return b""


def _decision_id(answer: bytes) -> str | None:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"x-egress-decision-id":
            return v.strip().decode()
    return None


@settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    data=requests(),
    mode=st.sampled_from(["tls-tunnel", "plain", "raw-tunnel"]),
    hello=st.binary(min_size=1, max_size=200),
)
def test_fuzzed_requests(
    world: World, proxy: ProxyProcess, data: bytes, mode: str, hello: bytes
) -> None:
    raw = data.replace(b"{P}", str(world.origin.port).encode())
    seen_before = len(world.origin.seen)
    connections_before = world.origin.connections
    events_before = len(proxy.events())
    if mode == "raw-tunnel":
        # no TLS: a mangled ClientHello (TLS record header + noise) or opaque bytes
        sock, answer = raw_connect(
            proxy.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
        )
        assert answer.startswith(b"HTTP/1.1 200")
        payload = (b"\x16\x03\x01" + hello) if hello[0] % 2 else hello
        _exchange(sock, payload, wait=0.3)  # an incomplete hello is simply waited on
        sock.close()
        assert world.origin.connections == connections_before  # nothing relayed upstream
    elif mode == "tls-tunnel":
        sock, answer = raw_connect(
            proxy.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
        )
        assert answer.startswith(b"HTTP/1.1 200")
        tls = proxy.client_context().wrap_socket(sock, server_hostname="localhost")
        answer = _exchange(tls, raw)
        tls.close()
    else:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            answer = _exchange(s, raw.replace(b"{AUTH}", b""))
    assert proxy.proc.poll() is None, "proxy died"
    forwarded = len(world.origin.seen) - seen_before
    events = proxy.wait_events(events_before + forwarded, timeout=3)[events_before:]
    allowed = [
        e for e in events if e["result"]["allow"] and e["request"]["port"] == world.origin.port
    ]
    assert forwarded <= len(allowed), "a request reached the origin without an allow"
    decision_id = _decision_id(answer)
    if decision_id is not None and decision_id != "forged-by-origin":
        assert proxy.event_for(decision_id, timeout=3)


def test_still_serving_after_fuzz(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        assert c.get(f"{world.origin.url}/api/after-fuzz").status_code == 200
