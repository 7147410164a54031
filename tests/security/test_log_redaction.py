"""A real value the proxy released never lands in the decision log, whatever field would quote it.

Red team N4 (round 2): an agent that holds a real value (learnt through any gap, or from its
environment) put it in the log through fields refusals quote before the request reaches the
swap station: the method (400), a CONNECT or absolute-form host (403), the path of a request
without credentials (407), a bad HTTP version or an unparsable request line (the error text).
The proxy now removes every value it has released, and every value its local store holds
(``Released.redact``, applied by the log writer to each event before it is chained and
signed), so a restarted proxy that released nothing yet is covered too. Over real sockets:
each shape is tried against a proxy that released the value by one legitimate swap and
against a fresh one, and the whole log is searched for the value in plain, percent and JSON
forms.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.conftest import GITHUB_VALUE, World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess, basic, proxy_for

pytestmark = pytest.mark.e2e

V = GITHUB_VALUE


@pytest.fixture(scope="module")
def released(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = proxy_for(world, tmp_path_factory.mktemp("redaction"))
    with http_client(proxy, world.alice) as c:
        ph = world.placeholders["github"]
        r = c.get(f"{world.origin.url}/api/release", headers={"Authorization": f"Bearer {ph}"})
    assert r.status_code == 200  # the value went on the wire: the proxy knows it
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def fresh(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    proxy = proxy_for(world, tmp_path_factory.mktemp("redaction-fresh"))
    yield proxy  # nothing swapped yet: only the store knows the value
    proxy.stop()


def _raw(proxy: ProxyProcess, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(data)
        s.settimeout(5)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out:
                    break
        except OSError:
            pass
        return out


def _shapes(world: World) -> dict[str, bytes]:
    auth = "Proxy-Authorization: " + basic(world.alice.name, world.alice.token)
    host = f"localhost:{world.plain.port}"
    return {
        "method": f"{V} http://{host}/ HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n\r\n".encode(),
        "connect-host": f"CONNECT {V}:443 HTTP/1.1\r\nHost: {V}:443\r\n{auth}\r\n\r\n".encode(),
        "absolute-host": (
            f"GET http://{V}.localhost/ HTTP/1.1\r\nHost: {V}.localhost\r\n{auth}\r\n\r\n"
        ).encode(),
        "no-credential-path": f"GET http://{host}/{V} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(),
        "bad-version": f"GET http://{host}/ HTTP/{V}\r\nHost: {host}\r\n{auth}\r\n\r\n".encode(),
        "garbage-line": f"{V}\r\n\r\n".encode(),
        "port": f"GET http://localhost:{V}/ HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n".encode(),
    }


@pytest.mark.parametrize(
    "shape",
    ["method", "connect-host", "absolute-host", "no-credential-path", "bad-version",
     "garbage-line", "port"],
)  # fmt: skip
@pytest.mark.parametrize("which", ["released", "fresh"])
def test_real_value_never_reaches_the_log(
    world: World, request: pytest.FixtureRequest, shape: str, which: str
) -> None:
    released: ProxyProcess = request.getfixturevalue(which)
    before = len(released.events())
    answer = _raw(released, _shapes(world)[shape])
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]  # refused, one way or another
    events = released.wait_events(before + 1)
    assert len(events) > before  # the refusal has its event...
    logged = released.log_path.read_text()
    for form in (V, quote(V, safe=""), V.replace("_", "\\u005f")):
        assert form not in logged, shape  # ...and the value is in none
    assert world.placeholders["github"] in logged  # replaced by the inert placeholder
