"""Request targets and methods an origin or a log reader could read differently (issue 13,
item 17 c-e), over a real tunnel to the real TLS origin, HTTP/1.1 and HTTP/2:

- control bytes in the target (C0, DEL, C1, bytes that are not UTF-8) -> 400 http_malformed;
- ``;`` path parameters that hide a dot-segment, and ``%3b``          -> 400 path_ambiguous;
- a method that is not upper case (``get`` is not ``GET``)            -> 400 http_malformed.
Each is refused before the policy, nothing reaches the origin, and the refusal's event records
the request as the agent sent it (JSON-escaped).
"""

from __future__ import annotations

import contextlib

import h2.config
import h2.connection
import h2.events
import pytest

from tests.conftest import World
from tests.e2e.test_protocols import open_tunnel_h2
from tests.support.clients import open_tunnel
from tests.support.proxy import ProxyProcess, parse_response, read_http_response

pytestmark = pytest.mark.e2e

CONTROL_TARGETS = {
    "nul": b"/api/a\x00b",
    "esc_csi": b"/api/a\x1b[31mred",
    "esc_osc_title": b"/api/a\x1b]0;pwned\x07b",
    "del": b"/api/a\x7fb",
    "soh": b"/api/a\x01b",
    "unit_sep": b"/api/a\x1fb",
    "vertical_tab": b"/api/a\x0bb",
    "form_feed": b"/api/a\x0cb",
    "c1_csi_utf8": b"/api/a\xc2\x9b31mb",
    "c1_nel_utf8": b"/api/a\xc2\x85b",
    "c1_raw_byte": b"/api/a\x9bb",
    "not_utf8": b"/api/a\xffb",
    "in_query": b"/api/a?q=\x1b[2J",
}
PARAM_PATHS = {
    "dotdot_semicolon": "/api/..;/admin",
    "dot_semicolon": "/api/.;/x",
    "dotdot_param": "/api/..;x=1/admin",
    "param_value_dotdot": "/api/a;x=../admin",
    "param_list_dotdot": "/api/a;x=1,..",
    "encoded_semicolon": "/api/..%3b/admin",
    "encoded_semicolon_upper": "/api/a%3Bx=1",
    "encoded_dots_param": "/api/%2e%2e;/admin",
}
METHODS = ["get", "Get", "gEt", "post", "pOST", "delete"]


def _h1(proxy: ProxyProcess, world: World, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    t.sock.settimeout(5)
    try:
        t.sock.sendall(raw)
        return parse_response(read_http_response(t.sock))
    finally:
        t.close()


def _h2(proxy: ProxyProcess, world: World, method: str, path: bytes) -> tuple[str, dict]:
    """Send one HTTP/2 request with h2's own validation off (playing the attacker); returns the
    status (or "reset"/"closed") and the response headers."""
    sock = open_tunnel_h2(proxy, world, "localhost")
    sock.settimeout(5)
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(validate_outbound_headers=False, normalize_outbound_headers=False)
    )
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", f"localhost:{world.origin.port}".encode()),
            (b":path", path),
        ],
        end_stream=True,
    )
    sock.sendall(conn.data_to_send())
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return "closed", {}
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in ev.headers}
                    return headers[":status"], headers
                if isinstance(ev, h2.events.StreamReset | h2.events.ConnectionTerminated):
                    return "reset", {}
            sock.sendall(conn.data_to_send())
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _nothing_forwarded(world: World, before: tuple[int, int]) -> None:
    assert (len(world.origin.seen), world.origin.connections) == before


def _refused(proxy: ProxyProcess, headers: dict[str, str], reason: str) -> dict:
    assert headers["x-egress-reason"] == reason
    event = proxy.event_for(headers["x-egress-decision-id"])
    assert event["result"]["allow"] is False and event["result"]["reason"] == reason
    return event


@pytest.mark.parametrize("name", sorted(CONTROL_TARGETS))
def test_control_bytes_in_target_h1(world: World, proxy: ProxyProcess, name: str) -> None:
    before = (len(world.origin.seen), world.origin.connections)
    n = len(proxy.events())
    target = CONTROL_TARGETS[name]
    raw = b"GET " + target + b" HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % world.origin.port
    status, headers, _ = _h1(proxy, world, raw)
    assert status == 400
    _nothing_forwarded(world, before)
    if "x-egress-decision-id" not in headers:
        # mitmproxy's parser refused the request line itself (VT, FF): still one event
        events = proxy.wait_events(n + 1)[n:]
        assert [(e["status"], e["result"]["reason"]) for e in events] == [(400, "http_malformed")]
        return
    event = _refused(proxy, headers, "http_malformed")
    # logged as sent; bytes that are not UTF-8 as \xNN text (JSON cannot carry them raw)
    assert event["request"]["path"] == target.split(b"?")[0].decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("name", sorted(CONTROL_TARGETS))
def test_control_bytes_in_target_h2(world: World, proxy: ProxyProcess, name: str) -> None:
    before = (len(world.origin.seen), world.origin.connections)
    status, headers = _h2(proxy, world, "GET", CONTROL_TARGETS[name])
    assert status in {"400", "reset"}  # h2's own checks may reset the stream first
    _nothing_forwarded(world, before)
    if status == "400":
        _refused(proxy, headers, "http_malformed")


@pytest.mark.parametrize("name", sorted(PARAM_PATHS))
def test_path_parameters_hiding_dot_segments(world: World, proxy: ProxyProcess, name) -> None:
    before = (len(world.origin.seen), world.origin.connections)
    path = PARAM_PATHS[name]
    status, headers, _ = _h1(
        proxy,
        world,
        b"GET %s HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (path.encode(), world.origin.port),
    )
    assert status == 400
    _nothing_forwarded(world, before)
    _refused(proxy, headers, "path_ambiguous")
    status2, headers2 = _h2(proxy, world, "GET", path.encode())
    assert status2 == "400"
    _refused(proxy, headers2, "path_ambiguous")
    _nothing_forwarded(world, before)


@pytest.mark.parametrize("path", ["/api/a;v=1", "/api/a;jsessionid=x/b", "/api/v1.0;x=y"])
def test_harmless_path_parameters_pass(world: World, proxy: ProxyProcess, path: str) -> None:
    status, _, _ = _h1(
        proxy,
        world,
        b"GET %s HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (path.encode(), world.origin.port),
    )
    assert status == 200
    assert world.origin.seen[-1].path == path


@pytest.mark.parametrize("method", METHODS)
def test_method_not_upper_case_is_refused(world: World, proxy: ProxyProcess, method: str) -> None:
    """Decided upper-case but forwarded as written would let ``get`` pass a GET-only rule and
    reach an origin that treats it otherwise; refused, and logged as the agent wrote it."""
    before = (len(world.origin.seen), world.origin.connections)
    raw = b"%s /api/x HTTP/1.1\r\nHost: localhost:%d\r\nContent-Length: 0\r\n\r\n" % (
        method.encode(),
        world.origin.port,
    )
    status, headers, _ = _h1(proxy, world, raw)
    assert status == 400
    _nothing_forwarded(world, before)
    assert _refused(proxy, headers, "http_malformed")["request"]["method"] == method
    status2, headers2 = _h2(proxy, world, method, b"/api/x")
    assert status2 in {"400", "reset"}
    if status2 == "400":
        assert _refused(proxy, headers2, "http_malformed")["request"]["method"] == method
    _nothing_forwarded(world, before)


def test_upper_case_method_is_decided_forwarded_and_logged_alike(
    world: World, proxy: ProxyProcess
) -> None:
    status, headers, _ = _h1(
        proxy,
        world,
        b"POST /api/x HTTP/1.1\r\nHost: localhost:%d\r\nContent-Length: 0\r\n\r\n"
        % world.origin.port,
    )
    assert status == 200 and world.origin.seen[-1].method == "POST"
    assert proxy.event_for(headers["x-egress-decision-id"])["request"]["method"] == "POST"


@pytest.mark.parametrize(
    "header",
    [b"User-Agent: agent\xff\xfe", b"Accept: text/\x9bplain", b"Content-Type: a\xc3(b"],
)
def test_undecodable_bytes_never_stop_the_decision_log(
    world: World, proxy: ProxyProcess, header: bytes
) -> None:
    """Bytes that are not UTF-8 in a header the policy input carries cannot be written as JSON
    as they are; such an event once stopped the log writer, and every later answer went
    unlogged. Now it is written (bytes as \\xNN text) and the next request is logged too."""
    raw = b"GET /api/x HTTP/1.1\r\nHost: localhost:%d\r\n%s\r\n\r\n" % (world.origin.port, header)
    status, headers, _ = _h1(proxy, world, raw)
    assert status in {200, 403}  # decided either way (an engine may refuse such input)
    event = proxy.event_for(headers["x-egress-decision-id"])
    assert event["status"] == status
    status2, headers2, _ = _h1(
        proxy, world, b"GET /api/y HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % world.origin.port
    )
    assert status2 == 200
    assert proxy.event_for(headers2["x-egress-decision-id"])["status"] == 200


@pytest.mark.parametrize(
    "value", [b"a\xc2\x9b31mb", b"a\xc2\x9d0;title\xc2\x9c", b"\xc2\x85next", b"x\xc2\x80"]
)
def test_c1_controls_in_header_values(world: World, proxy: ProxyProcess, value: bytes) -> None:
    """U+0080..U+009F (UTF-8 encoded) act as CSI/OSC/NEL on 8-bit terminals: refused like C0."""
    before = (len(world.origin.seen), world.origin.connections)
    raw = b"GET /api/x HTTP/1.1\r\nHost: localhost:%d\r\nUser-Agent: %s\r\n\r\n" % (
        world.origin.port,
        value,
    )
    status, headers, _ = _h1(proxy, world, raw)
    assert status == 400
    _nothing_forwarded(world, before)
    _refused(proxy, headers, "http_malformed")
