"""A real secret never travels in clear text unless the secret itself allows it (issue 13, item 9).

The shared policy has a rule allowing plain ``http`` to the plain origin with the ``github``
secret. Every way of asking for that swap over plain HTTP (absolute-form through the proxy, or
plain HTTP inside a CONNECT tunnel; placeholder in a header, Basic credentials, query, path or
body) is refused with 403 ``secret_plaintext_refused``, nothing reaches the origin, and the
refusal has its decision event. A secret stored with ``--allow-plaintext`` is swapped.
"""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path

import pytest

from egress.secrets.local import LocalSecretStore
from tests.conftest import GITHUB_VALUE, World
from tests.support.clients import http_client
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    proxy_for,
    raw_connect,
    read_http_response,
)

pytestmark = pytest.mark.e2e

POSITIONS = ["bearer", "custom_header", "basic", "query", "path", "form_body", "json_body"]


def _raw(world: World, where: str, *, absolute: bool) -> bytes:
    ph = world.placeholders["github"]
    host = f"localhost:{world.plain.port}"
    path, headers, body = "/api/plain", [f"Host: {host}"], b""
    if where == "bearer":
        headers.append(f"Authorization: Bearer {ph}")
    elif where == "custom_header":
        headers.append(f"X-Api-Key: {ph}")
    elif where == "basic":
        cred = base64.b64encode(f"x-access-token:{ph}".encode()).decode()
        headers.append(f"Authorization: Basic {cred}")
    elif where == "query":
        path += f"?access_token={ph}"
    elif where == "path":
        path += f"/{ph}"
    elif where == "form_body":
        body = f"token={ph}".encode()
        headers.append("Content-Type: application/x-www-form-urlencoded")
    else:
        body = b'{"token": "%s"}' % ph.encode()
        headers.append("Content-Type: application/json")
    method = "POST" if body else "GET"
    target = f"http://{host}{path}" if absolute else path
    if absolute:
        headers.append(f"Proxy-Authorization: {basic(world.alice.name, world.alice.token)}")
    headers.append(f"Content-Length: {len(body)}")
    head = "\r\n".join([f"{method} {target} HTTP/1.1", *headers])
    return (head + "\r\n\r\n").encode() + body


def _send(proxy: ProxyProcess, world: World, where: str, via: str) -> tuple[int, dict, bytes]:
    if via == "absolute":
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    else:  # plain HTTP inside a CONNECT tunnel to the plain origin's port
        sock, answer = raw_connect(
            proxy.port,
            f"localhost:{world.plain.port}",
            basic(world.alice.name, world.alice.token),
        )
        assert parse_response(answer)[0] == 200
    with sock:
        sock.sendall(_raw(world, where, absolute=via == "absolute"))
        return parse_response(read_http_response(sock))


@pytest.mark.parametrize("via", ["absolute", "tunnel"])
@pytest.mark.parametrize("where", POSITIONS)
def test_secret_over_plain_http_is_refused(
    world: World, proxy: ProxyProcess, where: str, via: str
) -> None:
    before = len(world.plain.seen)
    status, headers, body = _send(proxy, world, where, via)
    assert status == 403, body
    assert headers["x-egress-reason"] == "secret_plaintext_refused"
    assert len(world.plain.seen) == before  # nothing forwarded
    event = proxy.event_for(headers["x-egress-decision-id"])
    assert event["result"]["allow"] is False
    assert event["result"]["reason"] == "secret_plaintext_refused"
    assert event["status"] == 403 and event["secrets"] == []


def test_plain_http_without_a_secret_still_works(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        r = c.get(f"http://localhost:{world.plain.port}/api/plain")
    assert r.status_code == 200


def _allow_plaintext(state: Path) -> None:
    store = LocalSecretStore.open(state / "secrets.enc", state / "secrets.key")
    ref = next(r for r in store.list() if r.name == "github")
    store.put(ref.user, ref.agent, ref.name, GITHUB_VALUE, list(ref.hosts), allow_plaintext=True)
    assert next(r for r in store.list() if r.name == "github").allow_plaintext


@pytest.mark.parametrize("where", ["bearer", "query", "json_body"])
def test_secret_that_allows_plaintext_is_swapped(world: World, tmp_path: Path, where) -> None:
    p = proxy_for(world, tmp_path)
    try:
        before = len(world.plain.seen)
        assert _send(p, world, where, "absolute")[0] == 403
        _allow_plaintext(p.state_dir)
        deadline = time.monotonic() + 5  # the proxy re-reads the store file within a second
        while True:
            status, headers, _ = _send(p, world, where, "absolute")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200
        assert len(world.plain.seen) == before + 1
        seen = world.plain.seen[-1]
        assert GITHUB_VALUE in seen.path + repr(seen.headers) + seen.body.decode()
        assert p.event_for(headers["x-egress-decision-id"])["secrets"] == ["github"]
    finally:
        p.stop()
