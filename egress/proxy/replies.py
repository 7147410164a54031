"""Answers the proxy makes itself: small JSON bodies an agent can read and explain.

``{"error": "...", "reason": "<code>", "decision_id": "..."}`` plus the headers
``X-Egress-Decision-Id`` and ``X-Egress-Reason``. Upstream responses never carry these
headers (they are stripped on the way back), so an agent can trust them.
"""

from __future__ import annotations

from typing import Final

import orjson
from mitmproxy import http

from egress import reasons

DECISION_ID_HEADER: Final = "X-Egress-Decision-Id"
REASON_HEADER: Final = "X-Egress-Reason"
OWN_HEADER_PREFIX: Final = "x-egress-"

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


def refusal(status: int, reason: str, decision_id: str, message: str = "") -> http.Response:
    body = {
        "error": _ERRORS.get(status, "refused"),
        "reason": reason,
        "decision_id": decision_id,
    }
    body["message"] = message or reasons.DESCRIPTIONS.get(reason, "")
    headers = {
        "Content-Type": "application/json",
        DECISION_ID_HEADER: decision_id,
        REASON_HEADER: reason,
        "Cache-Control": "no-store",
    }
    if status == 407:
        headers["Proxy-Authenticate"] = 'Basic realm="egress"'
    return http.Response.make(status, orjson.dumps(body) + b"\n", headers)
