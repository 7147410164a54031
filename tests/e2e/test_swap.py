"""Placeholders swapped for real values only where allowed; real values never reach the agent."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import pytest

from tests.conftest import BOB_VALUE, GITHUB_VALUE, OPENAI_VALUE, World
from tests.support.clients import get, http_client, open_tunnel
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.e2e

ALL_VALUES = (GITHUB_VALUE, OPENAI_VALUE, BOB_VALUE)


def _assert_no_real_value(*blobs: object) -> None:
    for blob in blobs:
        text = blob if isinstance(blob, str) else repr(blob)
        for value in ALL_VALUES:
            assert value not in text
            assert base64.b64encode(value.encode()).decode() not in text


def _log_text(proxy: ProxyProcess) -> str:
    time.sleep(0.3)
    return proxy.log_path.read_text()


def test_bearer_header_swapped_and_echo_scrubbed(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/bearer", headers={"Authorization": f"Bearer {ph}"})
    assert r.status_code == 200
    assert world.origin.seen[-1].headers["authorization"] == f"Bearer {GITHUB_VALUE}"
    # the origin echoed the real value in body, in a header and base64-encoded: all scrubbed
    assert r.headers["x-echo-authorization"] == f"Bearer {ph}"
    assert r.json()["headers"]["authorization"] == f"Bearer {ph}"
    decoded = base64.b64decode(r.json()["auth_b64"] + "==")
    assert GITHUB_VALUE.encode() not in decoded
    _assert_no_real_value(r.text, dict(r.headers))
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["secrets"] == ["github"]
    _assert_no_real_value(_log_text(proxy))


def test_custom_header_swapped(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/custom", headers={"X-Api-Key": ph})
    assert r.status_code == 200
    assert world.origin.seen[-1].headers["x-api-key"] == GITHUB_VALUE
    _assert_no_real_value(r.text, dict(r.headers))


def test_basic_auth_swapped_inside_base64(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/basic", auth=("x-access-token", ph))
    assert r.status_code == 200
    sent = world.origin.seen[-1].headers["authorization"]
    assert sent.startswith("Basic ")
    assert base64.b64decode(sent[6:]).decode() == f"x-access-token:{GITHUB_VALUE}"
    _assert_no_real_value(r.text, dict(r.headers))
    # the echoed Basic header comes back with the placeholder inside
    echoed = r.json()["headers"]["authorization"]
    assert GITHUB_VALUE not in base64.b64decode(echoed[6:] + "==").decode("latin-1")


def test_query_parameter_swapped_and_url_encoded(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/query", params={"access_token": ph, "q": "x"})
    assert r.status_code == 200
    assert world.origin.seen[-1].path == (
        f"/api/query?access_token={quote(GITHUB_VALUE, safe='')}&q=x"
    )
    _assert_no_real_value(r.text)


def test_json_body_swapped(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.post(f"{world.origin.url}/api/body", json={"token": ph, "n": 1})
    assert r.status_code == 200
    assert json.loads(world.origin.seen[-1].body) == {"token": GITHUB_VALUE, "n": 1}
    _assert_no_real_value(r.text)


def test_secret_not_listed_by_policy_is_denied(world: World, proxy: ProxyProcess) -> None:
    before = len(world.origin.seen)
    ph = world.placeholders["openai"]  # alice's, but the origin rule lists only "github"
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/x", headers={"Authorization": f"Bearer {ph}"})
    assert r.status_code == 403
    assert r.json()["reason"] == "secret_not_allowed"
    assert len(world.origin.seen) == before
    event = proxy.event_for(r.json()["decision_id"])
    assert event["result"]["allow"] is False and event["secrets"] == []


def test_secret_host_binding_enforced(world: World, proxy: ProxyProcess) -> None:
    # policy rule "origin-by-ip" lists github for 127.0.0.1, but the secret is bound to localhost
    before = len(world.origin.seen)
    ph = world.placeholders["github"]
    with http_client(proxy, world.alice) as c:
        r = c.get(
            f"https://127.0.0.1:{world.origin.port}/api/x",
            headers={"Authorization": f"Bearer {ph}"},
        )
    assert r.status_code == 403
    assert r.json()["reason"] == "secret_host_not_bound"
    assert len(world.origin.seen) == before


def test_another_agents_placeholder_is_never_swapped(world: World, proxy: ProxyProcess) -> None:
    before = len(world.origin.seen)
    with http_client(proxy, world.alice) as c:
        r = c.get(
            f"{world.origin.url}/api/x",
            headers={"Authorization": f"Bearer {world.placeholders['bobsecret']}"},
        )
    assert r.status_code == 403
    assert r.json()["reason"] == "placeholder_unknown"
    assert len(world.origin.seen) == before
    _assert_no_real_value(r.text)


def test_same_name_agent_of_other_user_cannot_use_alices_placeholder(
    world: World, proxy: ProxyProcess
) -> None:
    # bob's agent is also called triage-bot and his policy lists no "github"; ownership is
    # (user, agent), not the agent name alone
    with http_client(proxy, world.bob) as c:
        r = c.get(
            f"{world.origin.url}/api/x",
            headers={"Authorization": f"Bearer {world.placeholders['github']}"},
        )
    assert r.status_code == 403
    assert r.json()["reason"] == "placeholder_unknown"


def test_unknown_placeholder_shape_is_denied(world: World, proxy: ProxyProcess) -> None:
    fake = "ghp_egph" + "Z" * 40
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/x", headers={"X-Token": fake})
    assert r.status_code == 403 and r.json()["reason"] == "placeholder_unknown"


def test_percent_encoded_placeholder_is_refused(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    hidden = "".join(f"%{b:02X}" for b in ph.encode())
    before = len(world.origin.seen)
    t = open_tunnel(proxy, world.alice, f"localhost:{world.origin.port}", "localhost")
    try:
        status, _, body = t.request(get(f"/api/q?token={hidden}", f"localhost:{world.origin.port}"))
    finally:
        t.close()
    assert status == 403
    assert json.loads(body)["reason"] == "placeholder_obfuscated"
    assert len(world.origin.seen) == before


def test_redirect_to_other_host_does_not_carry_secret(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    target = f"https://127.0.0.1:{world.origin.port}/api/landing"
    with http_client(proxy, world.alice, follow_redirects=True) as c:
        r = c.get(
            f"{world.origin.url}/redirect",
            params={"to": target},
            headers={"Authorization": f"Bearer {ph}"},
        )
    # httpx drops Authorization on cross-origin redirects itself; re-send it by hand like a
    # careless agent would, and the proxy must still refuse
    with http_client(proxy, world.alice) as c:
        r2 = c.get(target, headers={"Authorization": f"Bearer {ph}"})
    assert r2.status_code == 403 and r2.json()["reason"] == "secret_host_not_bound"
    for seen in world.origin.seen:
        if seen.path.startswith("/api/landing"):
            assert GITHUB_VALUE not in repr(seen.headers)
    _assert_no_real_value(r.text, dict(r.headers), r2.text)


def test_streamed_sse_echo_is_scrubbed_across_chunks(world: World, proxy: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    with (
        http_client(proxy, world.alice) as c,
        c.stream("GET", f"{world.origin.url}/sse", headers={"Authorization": f"Bearer {ph}"}) as r,
    ):
        chunks = list(r.iter_bytes())
    body = b"".join(chunks).decode()
    assert r.headers["content-type"] == "text/event-stream"
    assert "data: one" in body and "data: three" in body
    assert f"data: auth=Bearer {ph}" in body
    _assert_no_real_value(body)
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["bytes"]["response"] == len(body.encode())
