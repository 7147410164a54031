"""RequestChecks: the request is well-formed and unambiguous before the policy sees it.

Runs just before Authorize, on every request (CONNECT heads are Authorize's alone). It gives the
request its decision id, keeps what the agent sent (the decision event is built from that, so no
log reader ever sees a real value SwapSecrets puts in later), then refuses, first failure wins:

  1. no identity (unreachable while Identify runs first)       -> 407 credential_missing
  2. the decision log is not accepting events                   -> 503 audit_unavailable
     (unless --on-log-failure allow)
  3. header block over --max-header-bytes / --max-headers         -> 431 headers_too_large
  4. not well-formed (egress.proxy.httpcheck)                    -> 400 http_malformed
  5. CONNECT target, SNI, Host and :authority disagree            -> 421 destination_mismatch
  6. path with dot-segments or encoded separators               -> 400 path_ambiguous
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.destination.agreement import check_agreement, path_is_ambiguous
from egress.identity.model import Identity
from egress.proxy import flowstate, replies
from egress.proxy.flowstate import ConnRegistry
from egress.proxy.httpcheck import malformed, too_large


def refuse(flow: http.HTTPFlow, status: int, reason: str, message: str = "") -> None:
    """Answer the flow with a refusal under its decision id (one is made if it has none)."""
    decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
    flow.metadata[flowstate.DENIED] = reason
    flow.response = replies.refusal(status, reason, decision_id, message)


class RequestChecks:
    def __init__(
        self,
        conns: ConnRegistry,
        audit_ok: Callable[[], bool] = lambda: True,
        header_limits: tuple[int, int] = (64 * 1024, 128),
    ) -> None:
        self.conns = conns
        self.audit_ok = audit_ok  # False while decision events cannot be written
        self.header_limits = header_limits  # (max bytes, max fields) forwarded

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        flow.metadata[flowstate.DECISION_ID] = new_decision_id()
        flow.metadata[flowstate.AS_SENT] = {
            # as written on the wire (mitmproxy's ``method`` is upper-cased)
            "method": flow.request.data.method.decode("utf-8", "surrogateescape"),
            "path": flow.request.path.split("?", 1)[0],
            "bytes_in": len(flow.request.raw_content or b""),
        }
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        if identity is None:
            refuse(flow, 407, "credential_missing")
        elif not self.audit_ok():
            refuse(flow, 503, reasons.AUDIT_UNAVAILABLE)
        else:
            self._check_request(flow)

    def _check_request(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        oversize = too_large(req, *self.header_limits)
        if oversize is not None:
            refuse(flow, 431, reasons.HEADERS_TOO_LARGE, oversize)
            return
        problem = malformed(req)
        if problem is not None:
            refuse(flow, 400, reasons.HTTP_MALFORMED, problem)
            return
        connect_target = self.conns.get(flow.client_conn).connect_target
        mismatch = check_agreement(
            scheme=req.scheme,
            request_host=req.host,
            request_port=req.port,
            host_header=req.headers.get("host"),
            # HTTP/2 :authority, or an absolute-form target inside a tunnel
            authority=req.authority or None,
            sni=flow.client_conn.sni if connect_target else None,
            connect_target=connect_target,
        )
        if mismatch is not None:
            refuse(flow, 421, mismatch.reason, mismatch.detail)
        elif path_is_ambiguous(req.path):
            refuse(flow, 400, "path_ambiguous")
