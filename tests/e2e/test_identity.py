"""Identity comes from the proxy credential only: 407 cases and ignored identity claims."""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.conftest import World
from tests.support.clients import get, http_client, plain_socket_request
from tests.support.proxy import ProxyProcess, basic, parse_response, raw_connect

pytestmark = pytest.mark.e2e


def _connect_status(proxy: ProxyProcess, world: World, auth: str | None):
    sock, answer = raw_connect(proxy.port, f"localhost:{world.origin.port}", auth)
    sock.close()
    return parse_response(answer)


@pytest.mark.parametrize(
    ("auth", "reason"),
    [
        (None, "credential_missing"),
        ("", "credential_missing"),
        ("Bearer sometoken", "credential_malformed"),
        ("Basic !!!notbase64!!!", "credential_malformed"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "credential_malformed"),
        ("Basic " + base64.b64encode(b"triage-bot:egt_wrongtoken").decode(), "credential_invalid"),
    ],
)
def test_connect_without_valid_credential_is_407(
    world: World, proxy: ProxyProcess, auth: str | None, reason: str
) -> None:
    before = len(world.origin.seen)
    status, headers, body = _connect_status(proxy, world, auth)
    assert status == 407
    assert headers["proxy-authenticate"].startswith("Basic")
    doc = orjson.loads(body)
    assert doc["reason"] == reason
    assert headers["x-egress-reason"] == reason
    event = proxy.event_for(doc["decision_id"])
    assert event["kind"] == "connect"
    assert event["status"] == 407
    assert event["agent"] is None
    assert event["result"] == {**event["result"], "allow": False, "reason": reason}
    assert len(world.origin.seen) == before


def test_token_of_another_agent_name_is_407(world: World, proxy: ProxyProcess) -> None:
    # alice's valid token, presented under bob-like name: the pair must match
    status, _, body = _connect_status(proxy, world, basic("other-bot", world.alice.token))
    assert status == 407
    assert orjson.loads(body)["reason"] == "credential_invalid"


def test_revoked_agent_is_407(world: World, proxy: ProxyProcess) -> None:
    status, _, body = _connect_status(proxy, world, basic(world.dave.name, world.dave.token))
    assert status == 407
    assert orjson.loads(body)["reason"] == "credential_invalid"


def test_plain_http_without_credential_is_407(world: World, proxy: ProxyProcess) -> None:
    before = len(world.plain.seen)
    raw = get(f"http://localhost:{world.plain.port}/api/x", f"localhost:{world.plain.port}")
    status, headers, body = plain_socket_request(proxy, raw)
    assert status == 407
    assert orjson.loads(body)["reason"] == "credential_missing"
    assert len(world.plain.seen) == before


def test_identity_claims_are_ignored_and_stripped(world: World, proxy: ProxyProcess) -> None:
    claims = {
        "X-Agent": "bob",
        "X-Agent-Id": "bob@example.com/triage-bot",
        "X-User": "bob@example.com",
        "X-Forwarded-User": "bob@example.com",
        "X-Remote-User": "root",
        "X-Egress-Agent": "bob",
        "X-Egress-Decision-Id": "client-forged",
    }
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/claims", headers=claims)
    assert r.status_code == 200
    seen = world.origin.seen[-1]
    assert seen.path == "/api/claims"
    for name in claims:
        assert name.lower() not in seen.headers
    assert "proxy-authorization" not in seen.headers
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["agent"]["user"] == "alice@example.com"
    assert r.headers["x-egress-decision-id"] != "client-forged"


def test_proxy_authorization_never_reaches_plain_origin(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        r = c.get(f"http://localhost:{world.plain.port}/api/plain")
    assert r.status_code == 200, r.text
    seen = world.plain.seen[-1]
    assert seen.path == "/api/plain"
    assert "proxy-authorization" not in seen.headers
    assert world.alice.token not in repr(seen.headers)


def test_second_credential_inside_tunnel_cannot_change_identity(
    world: World, proxy: ProxyProcess
) -> None:
    # alice opens the tunnel; inside it, claims to be bob with bob's real credential
    from tests.support.clients import open_tunnel

    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        status, headers, _ = t.request(
            get(
                "/api/inner",
                f"localhost:{world.origin.port}",
                {"Proxy-Authorization": basic(world.bob.name, world.bob.token)},
            )
        )
    finally:
        t.close()
    assert status == 200
    event = proxy.event_for(headers["x-egress-decision-id"])
    assert event["agent"]["user"] == "alice@example.com"
    assert "proxy-authorization" not in world.origin.seen[-1].headers
