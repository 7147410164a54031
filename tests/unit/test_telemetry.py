from __future__ import annotations

from egress.proxy.telemetry import Telemetry


def _event(user: str, reason: str = "allowed", allow: bool = True, ms: float = 0.3) -> dict:
    return {
        "agent": {"user": user, "name": "bot"},
        "result": {"allow": allow, "reason": reason},
        "metrics": {"decision_ms": ms},
    }


def test_agent_label_cardinality_is_bounded() -> None:
    t = Telemetry(max_agents=3)
    for i in range(10):
        t.observe(_event(f"u{i}@example.com"))
    assert len(t.agent_requests) == 4  # three named agents and "other"
    assert t.agent_requests["other"] == 7
    text = t.render({}, {"engine": "embedded", "revision": "r"})
    assert text.count("egress_agent_requests_total{") == 4


def test_counters_histogram_and_errors() -> None:
    t = Telemetry()
    t.observe(_event("a@x", "policy_timeout", allow=False, ms=300.0))
    t.observe(_event("a@x", "secret_unavailable", allow=False))
    t.observe(
        {
            "agent": None,
            "result": {"allow": False, "reason": "credential_missing"},
            "metrics": {"decision_ms": None},
        }
    )
    text = t.render({"egress_log_queue_depth": 2}, {"engine": "opa", "revision": "x"})
    assert 'egress_engine_errors_total{reason="policy_timeout"} 1' in text
    assert "egress_secret_store_errors_total 1" in text
    assert 'egress_decision_duration_seconds_bucket{le="0.25"} 1' in text
    assert 'egress_decision_duration_seconds_bucket{le="0.5"} 2' in text
    assert "egress_decision_duration_seconds_count 2" in text
    assert "egress_log_queue_depth 2" in text
    assert 'egress_decisions_total{decision="deny",reason="credential_missing"} 1' in text


def test_label_values_are_escaped() -> None:
    t = Telemetry()
    t.observe(_event('evil"\nuser'))
    text = t.render({}, {"engine": "e", "revision": "r"})
    assert 'agent="evil\\"\\nuser/bot"' in text
