"""Dependencies failing: the policy engine and upstream TLS. Every failure is a refusal."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.opa_stub import start_policy_stub
from tests.support.origin import free_port
from tests.support.proxy import (
    ProxyProcess,
    basic,
    parse_response,
    proxy_for,
    raw_connect,
)

pytestmark = pytest.mark.e2e


def test_untrusted_upstream_certificate_is_502(world: World, proxy: ProxyProcess) -> None:
    before = len(world.untrusted.seen)
    with http_client(proxy, world.alice) as c:
        r = c.get(f"https://localhost:{world.untrusted.port}/api/x")
    assert r.status_code == 502
    assert "certificate" in r.text.lower()
    assert len(world.untrusted.seen) == before  # no request bytes went to the impostor
    deadline = time.monotonic() + 10  # the writer thread writes it a moment later
    while True:
        events = [
            e
            for e in proxy.events()
            if e["request"]["port"] == world.untrusted.port and e["kind"] == "request"
        ]
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert events, "no decision event for the failed upstream"
    event = events[-1]
    assert event["result"]["upstream"] == "upstream_tls_failed"
    assert event["status"] == 502
    assert event["result"]["allow"] is True  # policy allowed; the upstream failed


def _proxy_with_opa(world: World, tmp_path, opa_url: str) -> ProxyProcess:
    return proxy_for(world, tmp_path, "--opa-url", opa_url, "--opa-timeout", "0.3")


@pytest.fixture(params=["refused", "http500", "garbage", "wrong_types", "undefined", "slow"])
def broken_engine(request, world: World, tmp_path) -> Iterator[tuple[str, ProxyProcess]]:
    server = None
    if request.param == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        server, port = start_policy_stub(request.param)
        url = f"http://127.0.0.1:{port}"
    p = _proxy_with_opa(world, tmp_path, url)
    yield request.param, p
    p.stop()
    if server is not None:
        server.shutdown()


EXPECTED = {
    "refused": "policy_error",
    "http500": "policy_error",
    "garbage": "policy_malformed",
    "wrong_types": "policy_malformed",
    "undefined": "policy_undefined",
    "slow": "policy_timeout",
}


def test_engine_failure_denies(world: World, broken_engine) -> None:
    kind, p = broken_engine
    before = world.origin.connections
    sock, answer = raw_connect(
        p.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    status, headers, body = parse_response(answer)
    assert status == 403, kind
    assert headers["x-egress-reason"] == EXPECTED[kind]
    assert world.origin.connections == before
    events = p.wait_events(1)
    assert len(events) == 1 and events[0]["result"]["allow"] is False
    assert events[0]["result"]["engine"] == "opa"
