"""Faults of the real OPA process under a live proxy: killed, paused past the timeout, restarted.

While OPA is down every request is denied with a reason and logged; once OPA is back the proxy
recovers on its own (no restart). The decision cache never answers across an outage: OPA
failures change the engine revision the cache is keyed on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.opa import OpaServer, start_opa
from tests.support.proxy import ProxyProcess, basic, parse_response, proxy_for, raw_connect

pytestmark = pytest.mark.e2e


@pytest.fixture
def opa_proxy(world: World, tmp_path) -> Iterator[tuple[OpaServer, ProxyProcess]]:
    opa = start_opa(world.data_file)
    p = proxy_for(world, tmp_path, "--opa-url", opa.url, "--opa-timeout", "0.3")
    yield opa, p
    p.stop()
    opa.stop()


def _get(world: World, p: ProxyProcess, path: str) -> httpx.Response:
    with http_client(p, world.alice) as c:
        return c.get(f"{world.origin.url}{path}")


def _wait_until_allowed(world: World, p: ProxyProcess, timeout: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if _get(world, p, "/api/recovered").status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("proxy did not recover after OPA came back")


def _connect_reason(world: World, p: ProxyProcess) -> str:
    """The proxy's answer to a CONNECT for the allowed origin: 'allowed' or the deny reason."""
    sock, answer = raw_connect(
        p.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    status, headers, _ = parse_response(answer)
    return "allowed" if status == 200 else headers["x-egress-reason"]


def test_killed_then_restarted(world: World, opa_proxy) -> None:
    opa, p = opa_proxy
    assert _get(world, p, "/api/before").status_code == 200
    opa.kill()
    time.sleep(1.3)  # one revision poll: the outage is noticed even by cached inputs
    before = len(world.origin.seen)
    reasons = [_connect_reason(world, p) for _ in range(3)]
    assert reasons == ["policy_error"] * 3
    with pytest.raises(httpx.ProxyError):
        _get(world, p, "/api/during")
    assert len(world.origin.seen) == before
    opa.start()  # same port
    _wait_until_allowed(world, p)
    denied = [e for e in p.events() if e["result"]["reason"] == "policy_error"]
    assert len(denied) >= 3


def test_paused_past_timeout_then_resumed(world: World, opa_proxy) -> None:
    opa, p = opa_proxy
    assert _get(world, p, "/api/before-pause").status_code == 200
    opa.pause()
    try:
        time.sleep(2.0)  # one revision poll (1 s) plus its timeout notices the pause
        before = len(world.origin.seen)
        outcomes = [_connect_reason(world, p) for _ in range(2)]
        assert len(world.origin.seen) == before
    finally:
        opa.resume()
    assert outcomes == ["policy_timeout"] * 2
    _wait_until_allowed(world, p)
    timeouts = [e for e in p.events() if e["result"]["reason"] == "policy_timeout"]
    assert timeouts
    assert all(e["result"]["allow"] is False for e in timeouts)
