"""Allowed and denied by host, port, method, path; kill switch; CONNECT refused before TLS."""

from __future__ import annotations

import orjson
import pytest

from tests.conftest import World
from tests.support.clients import get, http_client, plain_socket_request
from tests.support.proxy import ProxyProcess, basic, parse_response, raw_connect

pytestmark = pytest.mark.e2e


def test_allowed_get_and_post(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        r1 = c.get(f"{world.origin.url}/api/items?page=2")
        r2 = c.post(f"{world.origin.url}/api/items", json={"name": "x"})
    assert r1.status_code == 200 and r1.json()["path"] == "/api/items?page=2"
    assert r2.status_code == 200 and r2.json()["body"] == '{"name":"x"}'
    event = proxy.event_for(r2.headers["x-egress-decision-id"])
    assert event["result"]["allow"] is True
    assert event["result"]["rules"] == ["origin-api"]
    assert event["request"]["method"] == "POST"


@pytest.mark.parametrize(
    ("method", "path", "reason"),
    [
        ("DELETE", "/api/items/1", "method_not_allowed"),
        ("PUT", "/api/items/1", "method_not_allowed"),
        ("GET", "/admin", "path_not_allowed"),
        ("GET", "/", "path_not_allowed"),
        ("POST", "/apix", "path_not_allowed"),
    ],
)
def test_denied_by_method_or_path_never_reaches_origin(
    world: World, proxy: ProxyProcess, method: str, path: str, reason: str
) -> None:
    before = len(world.origin.seen)
    with http_client(proxy, world.alice) as c:
        r = c.request(method, f"{world.origin.url}{path}")
    assert r.status_code == 403
    body = r.json()
    assert body["reason"] == reason
    assert body["error"] == "forbidden by egress policy"
    assert r.headers["x-egress-decision-id"] == body["decision_id"]
    assert len(world.origin.seen) == before
    event = proxy.event_for(body["decision_id"])
    assert event["result"]["allow"] is False and event["result"]["reason"] == reason
    assert event["status"] == 403


def test_method_allowed_on_ip_rule_only_get(world: World, proxy: ProxyProcess) -> None:
    url = f"https://127.0.0.1:{world.origin.port}/api/x"
    with http_client(proxy, world.alice) as c:
        ok = c.get(url)
        denied = c.post(url)
    assert ok.status_code == 200
    assert denied.status_code == 403 and denied.json()["reason"] == "method_not_allowed"


def test_connect_to_unlisted_host_is_refused_before_tls(world: World, proxy: ProxyProcess) -> None:
    before = world.forbidden.connections
    sock, answer = raw_connect(
        proxy.port, f"localhost:{world.forbidden.port}", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    status, headers, body = parse_response(answer)
    assert status == 403
    doc = orjson.loads(body)
    assert doc["reason"] == "host_not_allowed"
    assert world.forbidden.connections == before  # no upstream connection was opened
    event = proxy.event_for(doc["decision_id"])
    assert event["kind"] == "connect"
    assert event["request"]["port"] == world.forbidden.port


def test_connect_to_unknown_name_is_refused(world: World, proxy: ProxyProcess) -> None:
    sock, answer = raw_connect(
        proxy.port, "exfil.example.net:443", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    status, _, body = parse_response(answer)
    assert status == 403
    assert orjson.loads(body)["reason"] == "host_not_allowed"


def test_agent_without_rules_is_denied(world: World, proxy: ProxyProcess) -> None:
    sock, answer = raw_connect(
        proxy.port, f"localhost:{world.origin.port}", basic(world.erin.name, world.erin.token)
    )
    sock.close()
    status, _, body = parse_response(answer)
    assert status == 403
    assert orjson.loads(body)["reason"] == "agent_unknown"


def test_rules_are_per_agent(world: World, proxy: ProxyProcess) -> None:
    # bob's rules do not include the plain-HTTP origin that alice may use
    sock, answer = raw_connect(
        proxy.port, f"localhost:{world.plain.port}", basic(world.bob.name, world.bob.token)
    )
    sock.close()
    status, _, body = parse_response(answer)
    assert status == 403
    assert orjson.loads(body)["reason"] == "host_not_allowed"


def test_killed_agent_is_denied_everything(world: World, proxy: ProxyProcess) -> None:
    before = len(world.origin.seen)
    sock, answer = raw_connect(
        proxy.port, f"localhost:{world.origin.port}", basic(world.carol.name, world.carol.token)
    )
    sock.close()
    status, _, body = parse_response(answer)
    assert status == 403
    assert orjson.loads(body)["reason"] == "agent_killed"
    raw = get(
        f"http://localhost:{world.plain.port}/api/x",
        f"localhost:{world.plain.port}",
        {"Proxy-Authorization": basic(world.carol.name, world.carol.token)},
    )
    status, _, body = plain_socket_request(proxy, raw)
    assert status == 403 and orjson.loads(body)["reason"] == "agent_killed"
    assert len(world.origin.seen) == before


def test_plain_http_scheme_must_be_allowed(world: World, proxy: ProxyProcess) -> None:
    # the TLS origin's rule only admits https: plain http to the same port is refused
    with http_client(proxy, world.alice) as c:
        r = c.get(f"http://localhost:{world.origin.port}/api/x")
    assert r.status_code == 403
    assert r.json()["reason"] == "scheme_not_allowed"


def test_ambiguous_path_is_refused(world: World, proxy: ProxyProcess) -> None:
    from tests.support.clients import open_tunnel

    before = len(world.origin.seen)
    for path in (
        "/api/../admin",
        "/api/%2e%2e/admin",
        "/api/x%2fy",
        "/api/.%2E/admin",
        "/api\\..\\admin",
    ):
        t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
        try:
            status, _, body = t.request(get(path, f"localhost:{world.origin.port}"))
        finally:
            t.close()
        assert status == 400, path
        assert orjson.loads(body)["reason"] == "path_ambiguous"
    assert len(world.origin.seen) == before
