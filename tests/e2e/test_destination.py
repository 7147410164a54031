"""CONNECT target, SNI, Host and :authority must agree, per request, on every connection."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import World
from tests.support.clients import get, open_tunnel, plain_socket_request
from tests.support.proxy import ProxyProcess, basic

pytestmark = pytest.mark.e2e


def test_sni_differs_from_connect_target(world: World, proxy: ProxyProcess) -> None:
    before = len(world.origin.seen)
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "evil.example.com")
    try:
        status, headers, body = t.request(get("/api/x", f"localhost:{world.origin.port}"))
    finally:
        t.close()
    assert status == 421
    doc = orjson.loads(body)
    assert doc["reason"] == "destination_mismatch"
    assert "SNI" in doc["message"]
    assert len(world.origin.seen) == before


def test_host_header_differs_from_connect_target(world: World, proxy: ProxyProcess) -> None:
    # 127.0.0.1 is itself allowed by policy: the mismatch alone must refuse it
    before = len(world.origin.seen)
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        status, _, body = t.request(get("/api/x", f"127.0.0.1:{world.origin.port}"))
    finally:
        t.close()
    assert status == 421
    assert orjson.loads(body)["reason"] == "destination_mismatch"
    assert len(world.origin.seen) == before


def test_host_header_port_differs(world: World, proxy: ProxyProcess) -> None:
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        status, _, body = t.request(get("/api/x", f"localhost:{world.plain.port}"))
    finally:
        t.close()
    assert status == 421


def test_second_request_on_kept_alive_tunnel_for_other_host(
    world: World, proxy: ProxyProcess
) -> None:
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        first = t.request(get("/api/one", f"localhost:{world.origin.port}"))
        seen_after_first = len(world.origin.seen)
        second = t.request(get("/api/two", f"exfil.example.net:{world.origin.port}"))
        third = t.request(get("/api/three", f"localhost:{world.origin.port}"))
    finally:
        t.close()
    assert first[0] == 200
    assert second[0] == 421
    assert orjson.loads(second[2])["reason"] == "destination_mismatch"
    assert third[0] == 200  # the tunnel stays usable for its own host
    paths = [s.path for s in world.origin.seen[seen_after_first - 1 :]]
    assert "/api/two" not in paths and "/api/three" in paths


def test_absolute_uri_disagreeing_with_host_is_refused(world: World, proxy: ProxyProcess) -> None:
    before = len(world.plain.seen)
    raw = get(
        f"http://localhost:{world.plain.port}/api/x",
        f"exfil.example.net:{world.plain.port}",
        {"Proxy-Authorization": basic(world.alice.name, world.alice.token)},
    )
    status, _, body = plain_socket_request(proxy, raw)
    assert status == 421
    assert orjson.loads(body)["reason"] == "destination_mismatch"
    assert len(world.plain.seen) == before


def test_ip_literal_tunnel_without_sni(world: World, proxy: ProxyProcess) -> None:
    t = open_tunnel(proxy, world.alice, f"127.0.0.1:{world.origin.port}", None)
    try:
        status, _, _ = t.request(get("/api/ip", f"127.0.0.1:{world.origin.port}"))
    finally:
        t.close()
    assert status == 200
    assert world.origin.seen[-1].path == "/api/ip"
