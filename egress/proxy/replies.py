"""Answers the proxy makes itself: small JSON bodies an agent can read and explain.

``{"error": "...", "reason": "<code>", "decision_id": "...", "message": "..."}`` plus the
headers ``X-Egress-Decision-Id`` and ``X-Egress-Reason``. The parts shared with the gateway
(header names, body shapes) live in :mod:`egress.replies`; this module wraps them in a
mitmproxy response.
"""

from __future__ import annotations

import orjson
from mitmproxy import http

from egress.replies import (
    DECISION_ID_HEADER,
    OWN_HEADER_PREFIX,
    REASON_HEADER,
    proxy_body,
    refusal_headers,
)

__all__ = ["DECISION_ID_HEADER", "OWN_HEADER_PREFIX", "REASON_HEADER", "refusal"]


def refusal(status: int, reason: str, decision_id: str, message: str = "") -> http.Response:
    headers = {
        "Content-Type": "application/json",
        **refusal_headers(decision_id, reason),
        "Cache-Control": "no-store",
    }
    if status == 407:
        headers["Proxy-Authenticate"] = 'Basic realm="egress"'
    body = proxy_body(status, reason, decision_id, message)
    return http.Response.make(status, orjson.dumps(body) + b"\n", headers)
