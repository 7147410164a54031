"""Upstream HTTP/1 answers mitmproxy cannot carry as they are (issue 13, item 17 a-b), from a
real TLS origin that sends scripted raw bytes, to HTTP/1.1 and HTTP/2 clients:

- trailers after a chunked body crashed the connection inside mitmproxy and the client hung
  ~10 min; now the body is forwarded and the trailers dropped (RFC 9112 7.1.2);
- ``1xx`` informational answers (100, 102, 103 Early Hints, several in a row) were taken as
  the final answer; now they are dropped and the final answer delivered.
Neither path ever hands the agent a header that echoes the swapped secret, and the connection
stays usable for the next request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GITHUB_VALUE, World, policy_data
from tests.support.clients import get, http_client, open_tunnel
from tests.support.log_leaks import forms
from tests.support.proxy import ProxyProcess, proxy_for
from tests.support.raw_origin import RawOrigin, start_raw_origin

pytestmark = pytest.mark.e2e

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
TRAILERS = {
    "/trailer-one": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n",
    "/trailer-many": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nhel\r\n2\r\nlo\r\n0\r\nX-A: 1\r\nX-B: 2\r\nGrpc-Status: 0\r\n\r\n",
    "/trailer-echo": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Echo: {echo}\r\nSet-Cookie: t={echo}\r\n\r\n",
    "/trailer-ext": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0;last\r\nX-Sum: abc\r\n\r\n",
}
INFORMATIONAL = {
    "/early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" + OK,
    "/early-echo": b"HTTP/1.1 103 Early Hints\r\nX-Echo: {echo}\r\nLink: <{echo}>\r\n\r\n" + OK,
    "/continue": b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    "/processing": b"HTTP/1.1 102 Processing\r\n\r\n" + OK,
    "/several": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b>\r\n\r\n"
    + OK,
    "/bare-lf": b"HTTP/1.1 103 Early Hints\nLink: </s.css>\n\n" + OK,
    "/unknown-1xx": b"HTTP/1.1 199 Whatever\r\nX-Echo: {echo}\r\n\r\n" + OK,
}
UPLOAD = {"/upload": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"}
# answers mitmproxy cannot parse; its error text used to quote them, secret included, both in
# the 502 page the agent got and in the decision event
UNPARSABLE = {
    "/bad-status-line": b"NOT HTTP {echo}\r\n\r\n",
    "/bad-header-line": b"HTTP/1.1 200 OK\r\nX-A {echo}\r\n\r\n",
    "/bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz {echo}\r\n",
    "/bad-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: {echo}\r\n\r\n",
    "/bad-version": b"HTTP/9 200 {echo}\r\n\r\n",
}


@pytest.fixture(scope="module")
def raw(world: World) -> Iterator[RawOrigin]:
    leaf = world.test_ca.issue("raw-origin", ["localhost"], ["127.0.0.1"])
    origin = start_raw_origin(
        leaf.cert_path, leaf.key_path, {**TRAILERS, **INFORMATIONAL, **UNPARSABLE, **UPLOAD}
    )
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def rproxy(world: World, raw: RawOrigin, tmp_path_factory) -> Iterator[ProxyProcess]:
    tmp: Path = tmp_path_factory.mktemp("framing")
    data = policy_data(world.origin.port, world.plain.port, world.untrusted.port)
    data["egress"]["agents"]["alice@example.com"]["triage-bot"]["rules"].append(
        {"id": "raw", "hosts": ["localhost"], "ports": [raw.port], "secrets": ["github"]}
    )
    (tmp / "data.json").write_text(json.dumps(data))
    p = proxy_for(world, tmp, data_file=tmp / "data.json")
    yield p
    p.stop()


def _no_secret(blob: bytes) -> None:
    assert not any(f in blob for f in forms(GITHUB_VALUE))


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("path", sorted(TRAILERS) + sorted(INFORMATIONAL))
def test_answer_arrives_whole_and_in_time(
    world: World, raw: RawOrigin, rproxy: ProxyProcess, path: str, http2: bool
) -> None:
    ph = world.placeholders["github"]
    started = time.monotonic()
    with http_client(rproxy, world.alice, http2=http2) as c:
        url = f"https://localhost:{raw.port}{path}"
        r = c.get(url, headers={"Authorization": f"Bearer {ph}"}, timeout=5)
        # the same client connection carries the next request too
        again = c.get(url, headers={"Authorization": f"Bearer {ph}"}, timeout=5)
    assert time.monotonic() - started < 5
    assert (r.status_code, r.content, again.status_code, again.content) == (
        200,
        b"hello",
        200,
        b"hello",
    )
    assert f"Bearer {GITHUB_VALUE}".encode() in raw.seen[-1]  # the swap reached the origin
    _no_secret(repr(r.headers.raw).encode() + repr(again.headers.raw).encode())
    event = rproxy.event_for(r.headers["x-egress-decision-id"])
    assert (event["status"], event["result"]["allow"], event["error"]) == (200, True, None)


@pytest.mark.parametrize("path", sorted(INFORMATIONAL))
def test_no_informational_head_reaches_an_http1_client(
    world: World, raw: RawOrigin, rproxy: ProxyProcess, path: str
) -> None:
    """On the wire, the agent sees exactly one answer: the final one."""
    t = open_tunnel(rproxy, world.alice, f"localhost:{raw.port}", "localhost")
    t.sock.settimeout(5)
    try:
        ph = world.placeholders["github"]
        t.sock.sendall(get(path, f"localhost:{raw.port}", {"Authorization": f"Bearer {ph}"}))
        data = b""
        while not data.endswith(b"hello"):
            chunk = t.sock.recv(65536)
            assert chunk, data
            data += chunk
    finally:
        t.close()
    assert data.startswith(b"HTTP/1.1 200 ") and data.count(b"HTTP/1.1 ") == 1
    _no_secret(data)


@pytest.mark.parametrize("path", sorted(TRAILERS))
def test_trailers_never_reach_an_http1_client(
    world: World, raw: RawOrigin, rproxy: ProxyProcess, path: str
) -> None:
    t = open_tunnel(rproxy, world.alice, f"localhost:{raw.port}", "localhost")
    t.sock.settimeout(5)
    try:
        ph = world.placeholders["github"]
        t.sock.sendall(get(path, f"localhost:{raw.port}", {"Authorization": f"Bearer {ph}"}))
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = t.sock.recv(65536)
            assert chunk, data
            data += chunk
    finally:
        t.close()
    body = data.partition(b"\r\n\r\n")[2]
    assert body.endswith(b"\r\n0\r\n\r\n")  # the chunked body ends with no trailer section
    assert b"abc" not in body and b"Grpc-Status" not in body
    _no_secret(data)


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("path", sorted(UNPARSABLE))
def test_unparsable_answer_never_quotes_the_secret(
    world: World, raw: RawOrigin, rproxy: ProxyProcess, path: str, http2: bool
) -> None:
    ph = world.placeholders["github"]
    received = b""
    with http_client(rproxy, world.alice, http2=http2) as c:
        try:
            with c.stream(
                "GET",
                f"https://localhost:{raw.port}{path}",
                headers={"Authorization": f"Bearer {ph}"},
                timeout=5,
            ) as r:
                received = repr(r.headers.raw).encode()
                decision_id = r.headers.get("x-egress-decision-id")
                for chunk in r.iter_raw():
                    received += chunk
        except httpx.HTTPError:
            decision_id = None  # the answer broke off mid-body: what arrived is checked
    assert f"Bearer {GITHUB_VALUE}".encode() in raw.seen[-1]  # the swap reached the origin
    _no_secret(received)
    time.sleep(0.3)
    events = [e for e in rproxy.events() if decision_id in (None, e["decision_id"])]
    assert events and all(e["error"] for e in events[-1:])
    _no_secret(rproxy.log_path.read_bytes())


@pytest.mark.parametrize(
    "trailer",
    [b"X-Sum: abc\r\n", b"A: 1\r\nB: 2\r\n", b"Content-Length: 999\r\nHost: evil.example\r\n"],
)
def test_request_trailers_are_dropped_not_fatal(
    world: World, raw: RawOrigin, rproxy: ProxyProcess, trailer: bytes
) -> None:
    """A chunked upload ending in trailers crashed the connection inside mitmproxy (the agent
    hung). Now the body goes upstream without them (some servers would merge trailer fields
    into the head: ``Host`` or ``Content-Length`` there would be a smuggling aid)."""
    t = open_tunnel(rproxy, world.alice, f"localhost:{raw.port}", "localhost")
    t.sock.settimeout(5)
    n = len(raw.seen)
    try:
        t.sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: localhost:%d\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n%s\r\n" % (raw.port, trailer)
        )
        data = b""
        while not data.endswith(b"hello"):
            chunk = t.sock.recv(65536)
            assert chunk, data
            data += chunk
    finally:
        t.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    time.sleep(0.2)
    forwarded = b"\r\n\r\n".join(raw.seen[n:])  # the raw origin reads the body as a "head"
    assert forwarded.startswith(b"POST /upload ") and b"abc" in forwarded
    assert not any(line in forwarded for line in trailer.split(b"\r\n") if line)
