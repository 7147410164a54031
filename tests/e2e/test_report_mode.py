"""Report mode: the policy's denials are logged as would_deny and let through, clearly marked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess, basic, parse_response, proxy_for, raw_connect

pytestmark = pytest.mark.e2e


def _start(world: World, tmp_path, data: dict | None = None, *args: str) -> ProxyProcess:
    data_file = world.data_file
    if data is not None:
        data_file = tmp_path / "data.json"
        data_file.write_text(json.dumps(data))
    return proxy_for(world, tmp_path, *args, data_file=data_file)


@pytest.fixture
def global_report(world: World, tmp_path) -> Iterator[ProxyProcess]:
    p = _start(world, tmp_path, None, "--report-only", "true")
    yield p
    p.stop()


def test_policy_denial_becomes_would_deny(world: World, global_report: ProxyProcess) -> None:
    before = len(world.origin.seen)
    with http_client(global_report, world.alice) as c:
        r = c.get(f"{world.origin.url}/admin")
    assert r.status_code == 200  # let through
    assert world.origin.seen[before].path == "/admin"
    event = global_report.event_for(r.headers["x-egress-decision-id"])
    assert event["result"]["allow"] is True
    assert event["result"]["mode"] == "report" and event["result"]["would_deny"] is True
    assert event["result"]["reason"] == "path_not_allowed"


def test_report_mode_never_swaps_secrets(world: World, global_report: ProxyProcess) -> None:
    before = len(world.origin.seen)
    with http_client(global_report, world.alice) as c:
        r = c.get(
            f"{world.origin.url}/admin",
            headers={"Authorization": f"Bearer {world.placeholders['github']}"},
        )
    assert r.status_code == 403 and r.json()["reason"] == "secret_not_allowed"
    assert len(world.origin.seen) == before


def test_report_mode_keeps_kill_switch_and_unknown_agents(
    world: World, global_report: ProxyProcess
) -> None:
    for agent, reason in ((world.carol, "agent_killed"), (world.erin, "agent_unknown")):
        sock, answer = raw_connect(
            global_report.port, f"localhost:{world.origin.port}", basic(agent.name, agent.token)
        )
        sock.close()
        status, headers, _ = parse_response(answer)
        assert status == 403 and headers["x-egress-reason"] == reason


def test_allowed_requests_are_marked_enforce(world: World, global_report: ProxyProcess) -> None:
    with http_client(global_report, world.alice) as c:
        r = c.get(f"{world.origin.url}/api/normal")
    event = global_report.event_for(r.headers["x-egress-decision-id"])
    assert event["result"]["mode"] == "enforce" and event["result"]["would_deny"] is False


def test_per_agent_report_mode_from_policy_data(world: World, tmp_path) -> None:
    data = json.loads(world.data_file.read_text())
    data["egress"]["report_only"] = {"alice@example.com/triage-bot": True}
    p = _start(world, tmp_path, data)
    try:
        with http_client(p, world.alice) as c:
            alice = c.get(f"{world.origin.url}/admin")
        with http_client(p, world.bob) as c:
            bob = c.get(f"{world.origin.url}/admin")  # bob's rules allow GET anywhere on origin
            bob_denied = c.post(f"{world.origin.url}/api/x")
        assert alice.status_code == 200
        assert p.event_for(alice.headers["x-egress-decision-id"])["result"]["would_deny"]
        assert bob.status_code == 200 and bob_denied.status_code == 403  # enforced for bob
    finally:
        p.stop()
