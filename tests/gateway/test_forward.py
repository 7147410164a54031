"""The gateway's forward and account stations, and the app running every station in-process."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from egress import reasons
from egress.gateway import forward, stations
from egress.gateway.app import build_app
from egress.gateway.call import Call
from tests.gateway.inprocess import KEY, Rig, build_rig, chat, new_call

USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


def _echo(request: httpx.Request) -> httpx.Response:
    """An upstream that answers with usage and echoes the key it received (to be scrubbed)."""
    seen = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
    doc = {"model": "gpt-4o-mini", "echo": seen, "usage": USAGE}
    return httpx.Response(200, json=doc, headers={"x-request-id": "up-1", "set-cookie": "a=b"})


def _stream(request: httpx.Request) -> httpx.Response:
    chunks = [
        b'data: {"choices":[{"delta":{"content":"' + KEY.encode() + b'"}}]}\n\n',
        b'data: {"choices":[],"usage":' + json.dumps(USAGE).encode() + b"}\n\n",
        b"data: [DONE]\n\n",
    ]

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:  # one at a time, as a stream arrives
            yield chunk

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def _ready(rig: Rig, call: Call) -> Call:
    for station in stations.STATIONS:
        await station(rig.deps, call)
    return call


def test_upstream_body_asks_a_stream_for_its_usage() -> None:
    body = chat(stream=True, stream_options={"x": 1})
    call = new_call("POST", "openai", body=body)
    call.body, call.payload = body, json.loads(body)
    sent = json.loads(forward.upstream_body(call))
    assert sent["stream_options"] == {"x": 1, "include_usage": True}


def test_upstream_body_passes_other_bodies_byte_for_byte() -> None:
    body = b'{"model":  "gpt-4o-mini"}'
    call = new_call("POST", "openai", body=body)
    call.body, call.payload = body, json.loads(body)
    assert forward.upstream_body(call) is body


async def test_upstream_request_carries_the_key_not_the_agents_credential(tmp_path: Path):
    rig = build_rig(tmp_path)
    headers = {"accept": "application/json", "cookie": "agent=1", "x-egress-forged": "1"}
    call = new_call(
        "POST", "custom", token=rig.tokens["alice"], body=chat(), headers=headers, query="a=1"
    )
    request = forward.upstream_request(rig.deps, await _ready(rig, call))
    assert str(request.url) == "http://127.0.0.1:9/v1/chat/completions?a=1"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["accept"] == "application/json"
    for dropped in ("authorization", "cookie", "x-egress-forged"):
        assert dropped not in request.headers


async def test_answer_scrubs_charges_and_accounts_a_whole_body(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, _echo)
    call = await _ready(rig, new_call("POST", "openai", token=rig.tokens["alice"], body=chat()))
    response = await forward.answer(rig.deps, call, await forward.forward(rig.deps, call))
    assert KEY.encode() not in response.body and forward.REDACTED.encode() in response.body
    assert response.headers["x-egress-decision-id"] == call.decision_id
    assert response.headers["x-request-id"] == "up-1" and "set-cookie" not in response.headers
    assert rig.deps.budgets.usage()["alice@example.com/triage-bot"] == (12, 7, 5)
    [event] = rig.events
    assert event["result"]["reason"] == reasons.ALLOWED
    assert event["usage"]["prompt_tokens"] == 7 and event["secrets"] == ["openai"]
    assert event["bytes"]["response"] == len(response.body)


async def test_answer_accounts_a_stream_when_it_ends(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, _stream)
    call = await _ready(rig, new_call("POST", "openai", token=rig.tokens["alice"], body=chat()))
    response = await forward.answer(rig.deps, call, await forward.forward(rig.deps, call))
    assert rig.events == []  # nothing is accounted before the agent has the stream
    sent = b"".join([c async for c in response.body_iterator])  # type: ignore[misc]
    assert KEY.encode() not in sent and b"[DONE]" in sent
    [event] = rig.events
    assert event["bytes"]["response"] == len(sent) and event["usage"]["completion_tokens"] == 5
    assert rig.deps.budgets.usage()["alice@example.com/triage-bot"][0] == 12


async def _post(rig: Rig, route: str, token: str | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(rig.deps))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(f"/{route}/v1/chat/completions", content=chat(), headers=headers)


async def test_app_refusal_has_the_shared_shape_and_one_event(tmp_path: Path) -> None:
    rig = build_rig(tmp_path)
    r = await _post(rig, "nowhere", rig.tokens["alice"])
    body = r.json()
    assert r.status_code == 404
    assert body == {
        "error": {
            "message": reasons.DESCRIPTIONS.get(reasons.ROUTE_UNKNOWN, reasons.ROUTE_UNKNOWN),
            "type": "egress_gateway",
            "code": reasons.ROUTE_UNKNOWN,
        },
        "reason": reasons.ROUTE_UNKNOWN,
        "decision_id": r.headers["x-egress-decision-id"],
    }
    assert r.headers["x-egress-reason"] == reasons.ROUTE_UNKNOWN
    [event] = rig.events
    assert event["decision_id"] == body["decision_id"] and not event["result"]["allow"]


async def test_app_401_carries_the_challenge(tmp_path: Path) -> None:
    rig = build_rig(tmp_path)
    r = await _post(rig, "openai", None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="egress-gateway"'


async def test_app_unreachable_upstream_is_a_502_refusal_but_an_allowed_event(tmp_path: Path):
    rig = build_rig(tmp_path)  # the default upstream refuses every connection
    r = await _post(rig, "openai", rig.tokens["alice"])
    assert r.status_code == 502
    assert r.json()["error"]["message"] == "upstream unreachable"
    assert r.headers["x-egress-reason"] == reasons.UPSTREAM_CONNECT_FAILED
    [event] = rig.events
    assert event["result"]["allow"] and event["error"] == "ConnectError"
    assert event["result"]["reason"] == reasons.UPSTREAM_CONNECT_FAILED


@pytest.mark.parametrize("encode", [lambda k: k, lambda k: base64.b64encode(k.encode()).decode()])
async def test_app_forwards_and_scrubs_end_to_end(tmp_path: Path, encode) -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"echo": encode(KEY), "usage": USAGE})

    rig = build_rig(tmp_path, upstream)
    r = await _post(rig, "openai", rig.tokens["alice"])
    assert r.status_code == 200 and encode(KEY) not in r.text
    assert r.headers["x-egress-decision-id"] == rig.events[0]["decision_id"]
