"""Refusals egress makes itself, in one place for the proxy and the gateway.

Both front doors answer a refused request the same way: a small JSON body naming the reason
code and the decision id, plus the headers ``X-Egress-Decision-Id`` and ``X-Egress-Reason``
(upstream responses never carry these: they are stripped or overwritten on the way back, so an
agent can trust them). Only the body's outer shape differs: the proxy speaks plain HTTP to any
client, the gateway speaks the OpenAI-style ``{"error": {...}}`` its SDK clients parse. This
module has no web framework in it, so the gateway does not import mitmproxy and the proxy does
not import starlette; each wraps these parts in its own response type.
"""

from __future__ import annotations

from typing import Any, Final

from egress import reasons

DECISION_ID_HEADER: Final = "X-Egress-Decision-Id"
REASON_HEADER: Final = "X-Egress-Reason"
OWN_HEADER_PREFIX: Final = "x-egress-"
GATEWAY_ERROR_TYPE: Final = "egress_gateway"

_ERRORS = {
    400: "bad request",
    403: "forbidden by egress policy",
    407: "proxy authentication required",
    413: "request body too large",
    421: "misdirected request",
    429: "too many connections",
    431: "request header fields too large",
    502: "bad gateway",
    503: "service unavailable",
}


def refusal_headers(decision_id: str, reason: str) -> dict[str, str]:
    """The two headers every refusal carries, whichever door answered."""
    return {DECISION_ID_HEADER: decision_id, REASON_HEADER: reason}


def proxy_body(status: int, reason: str, decision_id: str, message: str = "") -> dict[str, Any]:
    """The proxy's body: a short status phrase in ``error``, the explanation in ``message``."""
    return {
        "error": _ERRORS.get(status, "refused"),
        "reason": reason,
        "decision_id": decision_id,
        "message": message or reasons.DESCRIPTIONS.get(reason, ""),
    }


def gateway_body(reason: str, decision_id: str, message: str = "") -> dict[str, Any]:
    """The gateway's body, shaped like an OpenAI API error so SDK clients surface the message.

    Without a message of its own it falls back to the reason's description, then the code.
    """
    return {
        "error": {
            "message": message or reasons.DESCRIPTIONS.get(reason, reason),
            "type": GATEWAY_ERROR_TYPE,
            "code": reason,
        },
        "reason": reason,
        "decision_id": decision_id,
    }
