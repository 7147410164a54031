"""DecisionLog on mitmproxy's test flows: one event per answered request, refused CONNECT,
refused WebSocket message, passthrough tunnel and flowless answer, with the fields an auditor
reads (result, reason, agent, secrets, status, bytes, error). A list stands in for the writer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from egress import reasons
from egress.audit.events import MASK
from egress.identity.model import Identity
from egress.policy.decision import Decision
from egress.proxy import flowstate
from egress.proxy.addons.decision_log import DecisionLog
from egress.proxy.flowstate import ConnRegistry

ALICE = Identity("alice@example.com", "triage-bot", "ns")
ALLOW = Decision(True, "allowed", frozenset({"github"}), ("r1",), "embedded", "rev-1")


class Writer:
    """What DecisionLog needs of DecisionLogWriter: submit (and start/close)."""

    started = True

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def submit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        return None


def _log(**kw: Any) -> tuple[DecisionLog, Writer]:
    writer = Writer()
    return DecisionLog(writer, "proxy-7", **kw), writer  # type: ignore[arg-type]


def _flow(
    decision: Decision | None = ALLOW, who: Identity | None = ALICE, *, resp: bool = True
) -> http.HTTPFlow:
    f = tflow.tflow(resp=resp)
    f.request.scheme, f.request.host, f.request.port = "https", "api.github.com", 443
    f.request.path = "/repos/x?token=abc"
    if who is not None:
        f.metadata[flowstate.IDENTITY] = who
    if decision is not None:
        f.metadata[flowstate.DECISION] = decision
    f.metadata[flowstate.DECISION_ID] = "dec-1"
    return f


def test_allowed_request_event_fields() -> None:
    log, w = _log()
    f = _flow()
    f.metadata[flowstate.SECRETS_USED] = ["openai", "github"]
    f.metadata[flowstate.DECISION_MS] = 1.5
    log.response(f)
    (e,) = w.events
    assert e["kind"] == "request" and e["decision_id"] == "dec-1"
    assert e["agent"] == {"user": ALICE.user, "name": ALICE.agent, "namespace": "ns"}
    assert e["result"] == {
        "allow": True,
        "reason": "allowed",
        "rules": ["r1"],
        "engine": "embedded",
        "revision": "rev-1",
        "upstream": None,
        "mode": "enforce",
        "would_deny": False,
    }
    assert e["secrets"] == ["github", "openai"]
    assert e["status"] == 200 and e["error"] is None
    assert e["request"]["host"] == "api.github.com" and e["request"]["port"] == 443
    assert e["request"]["path"] == "/repos/x"  # the query can carry tokens: never logged
    assert e["bytes"] == {"request": len(f.request.raw_content or b""), "response": 7}
    assert e["metrics"]["decision_ms"] == 1.5 and e["metrics"]["total_ms"] is not None
    assert e["labels"]["proxy_id"] == "proxy-7" and e["labels"]["component"] == "proxy"
    assert log.events == 1


def test_denied_by_the_policy() -> None:
    log, w = _log()
    log.response(_flow(Decision(False, reasons.DEFAULT_DENY, rules=())))
    assert w.events[0]["result"]["allow"] is False
    assert w.events[0]["result"]["reason"] == reasons.DEFAULT_DENY


def test_proxy_refusal_overrides_an_allow() -> None:
    log, w = _log()
    f = _flow()
    f.metadata[flowstate.DENIED] = reasons.SECRET_NOT_ALLOWED
    f.response = http.Response.make(403)
    log.response(f)
    r = w.events[0]["result"]
    assert r["allow"] is False and r["reason"] == reasons.SECRET_NOT_ALLOWED
    assert r["rules"] == ["r1"] and w.events[0]["status"] == 403


def test_no_identity_no_decision_is_default_deny() -> None:
    log, w = _log()
    f = _flow(None, None)
    f.response = http.Response.make(407)
    log.response(f)
    e = w.events[0]
    assert e["agent"] is None and e["input"] is None
    assert e["result"]["allow"] is False and e["result"]["reason"] == reasons.DEFAULT_DENY
    assert e["result"]["engine"] == "" and e["status"] == 407


def test_report_mode_logs_what_the_policy_would_have_said() -> None:
    log, w = _log()
    f = _flow()
    f.metadata[flowstate.WOULD_DENY] = reasons.DEFAULT_DENY
    log.response(f)
    r = w.events[0]["result"]
    assert r["mode"] == "report" and r["would_deny"] is True
    assert r["reason"] == reasons.DEFAULT_DENY and r["allow"] is True


@pytest.mark.parametrize("upstream", [reasons.UPSTREAM_CONNECT_FAILED, reasons.UPSTREAM_TLS_FAILED])
def test_failed_dial_is_a_502_with_the_upstream_reason(upstream: str) -> None:
    log, w = _log()
    f = _flow(resp=False)
    f.error = tflow.terr("connect failed: upstream b'\\x00secret' bytes")
    f.metadata[flowstate.UPSTREAM_REASON] = upstream
    log.error(f)
    e = w.events[0]
    assert e["status"] == 502 and e["result"]["upstream"] == upstream
    assert e["error"].startswith(f"{upstream}: ") and len(e["error"]) <= 300
    assert e["bytes"]["response"] == 0


def test_error_without_a_known_reason_is_upstream_error() -> None:
    log, w = _log()
    f = _flow(resp=False)
    f.error = tflow.terr("client disconnected")
    log.error(f)
    e = w.events[0]
    assert e["status"] is None and e["error"] == f"{reasons.UPSTREAM_ERROR}: client disconnected"


def test_malformed_request_keeps_the_status_mitmproxy_answered() -> None:
    log, w = _log()
    f = _flow(None, resp=False)
    f.error = tflow.terr("bad request")
    f.metadata[flowstate.UPSTREAM_REASON] = reasons.HTTP_MALFORMED
    f.metadata[flowstate.ERROR_STATUS] = 400
    log.error(f)
    e = w.events[0]
    assert e["status"] == 400 and e["result"]["reason"] == reasons.HTTP_MALFORMED


def test_connect_errors_are_left_to_http_connect_error() -> None:
    log, w = _log()
    f = _flow(resp=False)
    f.request.method = "CONNECT"
    f.error = tflow.terr("refused")
    log.error(f)
    assert w.events == []
    log.http_connect_error(f)
    assert w.events[0]["kind"] == "connect" and w.events[0]["request"]["path"] == ""


def test_each_flow_is_logged_once() -> None:
    log, w = _log()
    f = _flow()
    log.response(f)
    f.error = tflow.terr("late")
    log.error(f)
    log.response(f)
    assert len(w.events) == 1 and f.metadata[flowstate.LOGGED] is True


def test_event_shows_the_request_as_sent_not_as_swapped() -> None:
    log, w = _log()
    f = _flow()
    f.request.path = "/real-value-in-path"
    f.metadata[flowstate.AS_SENT] = {"method": "POST", "path": "/ph_X", "bytes_in": 12}
    log.response(f)
    e = w.events[0]
    assert e["request"]["method"] == "POST" and e["request"]["path"] == "/ph_X"
    assert e["bytes"]["request"] == 12


def test_streamed_answer_counts_the_streamed_bytes() -> None:
    log, w = _log()
    f = _flow()
    f.metadata[flowstate.RESPONSE_BYTES] = 12345
    log.response(f)
    assert w.events[0]["bytes"]["response"] == 12345


def test_policy_input_masked_query_by_default_headers_on_request() -> None:
    inp = {"request": {"query": {"token": ["abc"]}, "headers": {"accept": "x"}}}
    for kw, headers in (({}, {"accept": "x"}), ({"mask_headers": True}, {"accept": MASK})):
        log, w = _log(**kw)
        f = _flow()
        f.metadata[flowstate.INPUT] = inp
        log.response(f)
        logged = w.events[0]["input"]["request"]
        assert logged["query"] == {"token": [MASK]} and logged["headers"] == headers
    log, w = _log(mask_query=False)
    f = _flow()
    f.metadata[flowstate.INPUT] = inp
    log.response(f)
    assert w.events[0]["input"]["request"]["query"] == {"token": ["abc"]}
    assert inp["request"]["query"] == {"token": ["abc"]}  # the flow's own input untouched


def test_observers_see_every_event_before_the_writer() -> None:
    seen: list[dict[str, Any]] = []
    log, w = _log(observers=[seen.append])
    log.response(_flow())
    assert seen == w.events and len(seen) == 1


def test_bytes_that_are_not_utf8_still_make_a_json_event() -> None:
    log, w = _log()
    f = _flow()
    f.request.data.method = b"G\xffT"
    log.response(f)
    e = w.events[0]
    orjson.dumps(e)
    assert e["request"]["method"] == "G\\xffT"


def test_unflowed_answer_names_the_tunnels_agent_and_target() -> None:
    conns = ConnRegistry()
    log, w = _log(conns=conns)
    f = tflow.tflow()
    f.client_conn.tls = True
    state = conns.get(f.client_conn)
    state.identity, state.connect_target = ALICE, ("api.github.com", 443)
    log.unflowed(f.client_conn, 431, reasons.DEFAULT_DENY, "head too large")
    e = w.events[0]
    assert e["status"] == 431 and e["agent"]["user"] == ALICE.user
    assert e["request"]["scheme"] == "https" and e["request"]["host"] == "api.github.com"
    assert e["request"]["client"] == "127.0.0.1:22"
    assert e["error"] == f"{reasons.DEFAULT_DENY}: head too large"


def test_unflowed_answer_without_a_tunnel() -> None:
    log, w = _log()
    f = tflow.tflow()
    log.unflowed(f.client_conn, 400, reasons.HTTP_MALFORMED, "x" * 400)
    e = w.events[0]
    assert e["agent"] is None and e["request"]["host"] == "" and e["request"]["port"] is None
    assert len(e["error"]) == 300


def _tunnel(conns: ConnRegistry, f: Any) -> None:
    state = conns.get(f.client_conn)
    state.tunnel = {
        "decision": Decision(True, "allowed", rules=("pass",)),
        "identity": ALICE,
        "decision_id": "tun-1",
        "input": {"request": {"query": {"a": ["1"]}}},
        "host": "db.example",
        "port": 5432,
        "decision_ms": 0.7,
    }


def test_passthrough_tunnel_event_on_close() -> None:
    conns = ConnRegistry()
    log, w = _log(conns=conns)
    f = tflow.ttcpflow()
    _tunnel(conns, f)
    f.metadata[flowstate.TUNNEL_BYTES] = [10, 20]
    log.tcp_end(f)
    log.tcp_error(f)  # once only
    (e,) = w.events
    assert e["kind"] == "tunnel" and e["decision_id"] == "tun-1"
    assert e["result"]["mode"] == "passthrough" and e["result"]["allow"] is True
    assert e["request"]["method"] == "CONNECT" and e["request"]["port"] == 5432
    assert e["bytes"] == {"request": 10, "response": 20}
    assert e["input"]["request"]["query"] == {"a": [MASK]}
    assert e["result"]["upstream"] is None and e["error"] is None


def test_tunnel_closed_by_the_kill_switch_or_the_sweeper() -> None:
    conns = ConnRegistry()
    log, w = _log(conns=conns)
    killed = tflow.ttcpflow(err=True)
    _tunnel(conns, killed)
    killed.metadata[flowstate.TUNNEL_KILLED] = True
    log.tcp_error(killed)
    assert w.events[0]["error"].startswith(reasons.AGENT_KILLED)
    assert w.events[0]["result"]["upstream"] is None
    swept = tflow.ttcpflow()
    _tunnel(conns, swept)
    conns.get(swept.client_conn).closed_by = "identity_revoked: swept"
    log.tcp_end(swept)
    assert w.events[1]["error"] == "identity_revoked: swept"


def test_tunnel_upstream_failure_and_non_passthrough_tcp() -> None:
    conns = ConnRegistry()
    log, w = _log(conns=conns)
    failed = tflow.ttcpflow(err=True)
    _tunnel(conns, failed)
    log.tcp_error(failed)
    assert w.events[0]["result"]["upstream"] == reasons.UPSTREAM_ERROR
    plain = tflow.ttcpflow()  # no tunnel state: not a passthrough, nothing to log
    log.tcp_end(plain)
    assert len(w.events) == 1


@pytest.mark.parametrize("from_client, bytes_", [(True, (5, 0)), (False, (0, 5))])
def test_refused_websocket_message_event(from_client: bool, bytes_: tuple[int, int]) -> None:
    log, w = _log()
    f = _flow()
    f.metadata[flowstate.WS_REFUSED] = {
        "decision_id": "ws-1",
        "reason": reasons.PLACEHOLDER_UNKNOWN,
        "bytes": 5,
        "from_client": from_client,
        "detail": "unknown placeholder",
    }
    log.websocket_end(f)
    log.websocket_message(f)  # popped: logged once
    (e,) = w.events
    assert e["kind"] == "websocket" and e["decision_id"] == "ws-1"
    assert e["result"]["allow"] is False and e["result"]["reason"] == reasons.PLACEHOLDER_UNKNOWN
    assert e["bytes"] == {"request": bytes_[0], "response": bytes_[1]}
    assert e["secrets"] == [] and e["status"] is None
    assert e["error"] == f"{reasons.PLACEHOLDER_UNKNOWN}: websocket closed 1008 unknown placeholder"
