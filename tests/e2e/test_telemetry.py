"""The admin listener: Prometheus metrics that agree with the log, health, readiness, agents."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.origin import free_port
from tests.support.proxy import ProxyProcess, proxy_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def admin_proxy(world: World, tmp_path) -> Iterator[tuple[ProxyProcess, str]]:
    port = free_port()
    p = proxy_for(world, tmp_path, "--admin-listen", f"127.0.0.1:{port}", secrets=False)
    yield p, f"http://127.0.0.1:{port}"
    p.stop()


def _value(text: str, series: str) -> float:
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    assert m, f"{series} missing"
    return float(m.group(1))


def test_metrics_health_ready_agents(world: World, admin_proxy) -> None:
    p, admin = admin_proxy
    assert httpx.get(admin + "/healthz").text == "ok\n"
    ready = httpx.get(admin + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}
    with http_client(p, world.alice) as c:
        for i in range(3):
            assert c.get(f"{world.origin.url}/api/m{i}").status_code == 200
        assert c.get(f"{world.origin.url}/admin").status_code == 403
    p.wait_events(4)
    text = httpx.get(admin + "/metrics").text
    assert _value(text, 'egress_decisions_total{decision="allow",reason="allowed"}') == 3
    assert _value(text, 'egress_decisions_total{decision="deny",reason="path_not_allowed"}') == 1
    assert _value(text, "egress_decision_duration_seconds_count") == 4
    assert _value(text, 'egress_agent_requests_total{agent="alice@example.com/triage-bot"}') == 4
    assert _value(text, "egress_log_healthy") == 1
    assert _value(text, "egress_log_events_written_total") == 4
    assert 'egress_build_info{engine="embedded",revision="sha256:' in text
    agents = httpx.get(admin + "/agents").json()
    assert agents["alice@example.com/triage-bot"]["requests"] == 4
    assert agents["alice@example.com/triage-bot"]["last_activity"] > 0


def test_admin_port_is_not_reachable_through_the_proxy(world: World, admin_proxy) -> None:
    p, admin = admin_proxy
    port = int(admin.rsplit(":", 1)[1])
    with http_client(p, world.alice) as c:
        r = c.get(f"http://127.0.0.1:{port}/metrics")
    assert r.status_code == 403  # no rule admits it; loopback would be refused as well


def test_readyz_reports_an_unreachable_opa(world: World, tmp_path) -> None:
    port = free_port()
    p = proxy_for(
        world,
        tmp_path,
        "--admin-listen",
        f"127.0.0.1:{port}",
        "--opa-url",
        f"http://127.0.0.1:{free_port()}",
        secrets=False,
    )
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert r.status_code == 503
        assert "policy not loaded" in r.json()["problems"][0]
    finally:
        p.stop()


def test_event_input_is_masked_by_configuration(world: World, tmp_path) -> None:
    for mask, query_masked, headers_masked in (
        ("query", True, False),
        ("both", True, True),
        ("none", False, False),
    ):
        p = proxy_for(world, tmp_path, "--log-mask", mask, name=f"state-{mask}", secrets=False)
        try:
            with http_client(p, world.alice) as c:
                r = c.get(
                    f"{world.origin.url}/api/mask?token=abc123",
                    headers={"User-Agent": "agent-ua/1"},
                )
            event = p.event_for(r.headers["x-egress-decision-id"])
        finally:
            p.stop()
        request = event["input"]["request"]
        assert request["query"] == {"token": ["<masked>" if query_masked else "abc123"]}
        assert request["headers"]["user-agent"] == ("<masked>" if headers_masked else "agent-ua/1")
        assert event["input"]["agent"]["user"] == "alice@example.com"
