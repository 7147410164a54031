"""Each gateway station on its own: what it records on the call, and when it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress import reasons
from egress.gateway import stations
from egress.gateway.call import Call, Refused
from tests.gateway.inprocess import KEY, Rig, build_rig, chat, new_call


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return build_rig(tmp_path)


async def _through(rig: Rig, call: Call, last: stations.Station) -> None:
    """Run the stations up to and including ``last``, as the app would."""
    for station in stations.STATIONS:
        await station(rig.deps, call)
        if station is last:
            return


def test_stations_run_in_the_proxys_order() -> None:
    names = [s.__name__ for s in stations.STATIONS]
    assert names == ["identify", "route", "authorize", "budget", "credential"]


async def test_identify_knows_the_agent_by_its_token(rig: Rig) -> None:
    call = new_call("GET", "openai", token=rig.tokens["alice"])
    await stations.identify(rig.deps, call)
    assert str(call.agent) == "alice@example.com/triage-bot"


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, reasons.CREDENTIAL_MISSING), ("egress_nope", reasons.CREDENTIAL_INVALID)],
)
async def test_identify_refuses_401_with_a_challenge(rig: Rig, token, reason) -> None:
    call = new_call("GET", "openai", token=token)
    with pytest.raises(Refused) as e:
        await stations.identify(rig.deps, call)
    assert (e.value.status, e.value.reason) == (401, reason)
    assert e.value.headers == {"WWW-Authenticate": 'Bearer realm="egress-gateway"'}
    assert call.identity is None


async def test_route_reads_the_model_from_the_body(rig: Rig) -> None:
    body = chat()
    call = new_call("POST", "openai", body=body)
    await stations.route(rig.deps, call)
    assert call.target.name == "openai"
    assert (call.model, call.body, call.body_len) == ("gpt-4o-mini", body, len(body))
    assert call.payload is not None and call.payload["model"] == "gpt-4o-mini"


async def test_route_leaves_a_get_body_unread(rig: Rig) -> None:
    call = new_call("GET", "openai", path="models")
    await stations.route(rig.deps, call)
    assert (call.model, call.payload, call.body_len) == (None, None, 0)


async def test_route_refuses_an_unknown_route_404(rig: Rig) -> None:
    with pytest.raises(Refused) as e:
        await stations.route(rig.deps, new_call("POST", "nowhere", body=chat()))
    assert (e.value.status, e.value.reason) == (404, reasons.ROUTE_UNKNOWN)


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{nope", {}, 400, "body is not JSON"),
        (b"[1, 2]", {}, 400, "body is not a JSON object"),
        (b"{}", {"content-length": str(stations.MAX_BODY + 1)}, 413, "request body too large"),
    ],
)
async def test_route_refuses_a_body_it_cannot_read(rig: Rig, body, headers, status, message):
    call = new_call("POST", "openai", body=body, headers=headers)
    with pytest.raises(Refused) as e:
        await stations.route(rig.deps, call)
    assert (e.value.status, e.value.reason, e.value.message) == (
        status,
        reasons.HTTP_MALFORMED,
        message,
    )


async def test_authorize_asks_the_policy_with_route_and_model(rig: Rig) -> None:
    call = new_call("POST", "openai", token=rig.tokens["alice"], body=chat())
    await _through(rig, call, stations.authorize)
    assert call.decision is not None and call.decision.allow
    assert call.decision_ms is not None and call.decision_ms >= 0
    assert call.policy_input is not None
    assert call.policy_input["gateway"] == {"route": "openai", "model": "gpt-4o-mini"}
    assert call.policy_input["request"]["path"] == "/v1/chat/completions"


async def test_authorize_refuses_a_model_the_policy_does_not_list(rig: Rig) -> None:
    call = new_call("POST", "openai", token=rig.tokens["alice"], body=chat("gpt-5-huge"))
    with pytest.raises(Refused) as e:
        await _through(rig, call, stations.authorize)
    assert e.value.status == 403
    assert call.decision is not None and not call.decision.allow
    assert e.value.reason == call.decision.reason


async def test_budget_refuses_429_with_retry_after(tmp_path: Path) -> None:
    rig = build_rig(tmp_path, requests_per_minute=1)
    first = new_call("POST", "openai", token=rig.tokens["alice"], body=chat())
    await _through(rig, first, stations.budget)
    second = new_call("POST", "openai", token=rig.tokens["alice"], body=chat())
    with pytest.raises(Refused) as e:
        await _through(rig, second, stations.budget)
    assert (e.value.status, e.value.reason) == (429, reasons.RATE_LIMITED)
    assert int(e.value.headers["Retry-After"]) >= 1


async def test_credential_takes_the_routes_key(rig: Rig) -> None:
    call = new_call("POST", "openai", token=rig.tokens["alice"], body=chat())
    await _through(rig, call, stations.credential)
    assert (call.key, call.secrets) == (KEY, ["openai"])


@pytest.mark.parametrize(
    ("agent", "route", "reason"),
    [
        ("alice", "unlisted", reasons.SECRET_NOT_ALLOWED),
        ("bob", "openai", reasons.SECRET_UNAVAILABLE),
        ("alice", "elsewhere", reasons.SECRET_HOST_NOT_BOUND),
        ("alice", "cleartext", reasons.SECRET_PLAINTEXT_REFUSED),
    ],
)
async def test_credential_fails_closed(rig: Rig, agent, route, reason) -> None:
    call = new_call("POST", route, token=rig.tokens[agent], body=chat())
    with pytest.raises(Refused) as e:
        await _through(rig, call, stations.credential)
    assert (e.value.status, e.value.reason) == (403, reason)
    assert (call.key, call.secrets) == ("", [])


async def test_a_station_out_of_order_is_a_bug_not_a_refusal(rig: Rig) -> None:
    with pytest.raises(RuntimeError):
        await stations.authorize(rig.deps, new_call("GET", "openai"))
