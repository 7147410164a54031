"""The refusal shape shared by the proxy and the gateway (egress/replies.py)."""

from __future__ import annotations

import orjson

from egress import reasons, replies
from egress.proxy import replies as proxy_replies


def test_both_doors_name_the_decision_and_reason_in_the_same_headers() -> None:
    assert replies.refusal_headers("d-1", reasons.ROUTE_UNKNOWN) == {
        "X-Egress-Decision-Id": "d-1",
        "X-Egress-Reason": reasons.ROUTE_UNKNOWN,
    }
    assert proxy_replies.DECISION_ID_HEADER is replies.DECISION_ID_HEADER


def test_proxy_body_falls_back_to_the_reasons_description() -> None:
    body = replies.proxy_body(403, reasons.SECRET_NOT_ALLOWED, "d-1")
    assert body == {
        "error": "forbidden by egress policy",
        "reason": reasons.SECRET_NOT_ALLOWED,
        "decision_id": "d-1",
        "message": reasons.DESCRIPTIONS.get(reasons.SECRET_NOT_ALLOWED, ""),
    }
    assert replies.proxy_body(418, "x", "d-1", "why")["error"] == "refused"
    assert replies.proxy_body(418, "no-such-code", "d-1")["message"] == ""


def test_gateway_body_is_an_openai_style_error() -> None:
    assert replies.gateway_body("no-such-code", "d-2") == {
        "error": {"message": "no-such-code", "type": "egress_gateway", "code": "no-such-code"},
        "reason": "no-such-code",
        "decision_id": "d-2",
    }
    assert replies.gateway_body("x", "d-2", "said")["error"]["message"] == "said"


def test_the_proxys_refusal_is_unchanged_on_the_wire() -> None:
    r = proxy_replies.refusal(407, reasons.CREDENTIAL_MISSING, "d-3", "who are you")
    assert r.status_code == 407
    assert r.content == (
        b'{"error":"proxy authentication required","reason":"'
        + reasons.CREDENTIAL_MISSING.encode()
        + b'","decision_id":"d-3","message":"who are you"}\n'
    )
    assert list(r.headers.items()) == [
        ("Content-Type", "application/json"),
        ("X-Egress-Decision-Id", "d-3"),
        ("X-Egress-Reason", reasons.CREDENTIAL_MISSING),
        ("Cache-Control", "no-store"),
        ("Proxy-Authenticate", 'Basic realm="egress"'),
        ("content-length", str(len(r.content or b""))),
    ]
    assert orjson.loads(r.content or b"")["decision_id"] == "d-3"
