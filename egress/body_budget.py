"""One budget for the request bodies held in memory, across all flows of the process.

mitmproxy buffers each request body whole before the ``request`` hook (where the policy and
the placeholder swap act), bounded per flow by ``body_size_limit`` only: ten concurrent
uploads just under it hold ten times that in RSS. Streaming such uploads instead would send
them upstream before the policy has decided, so an upload the budget cannot hold is refused.

``install`` wraps ``HttpStream.check_body_size``, which mitmproxy calls with the expected size
(the Content-Length before any byte is read; for chunked bodies the bytes buffered so far, on
every chunk). Each flow reserves what it may hold; a reservation the budget cannot grant ends
the flow with the proxy's own 413 ``body_too_large`` refusal and closes the connection (HTTP/1)
or resets the stream (HTTP/2), as ``body_size_limit`` does; the Limits addon completes the
event and releases reservations when flows finish.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http import (
    ErrorCode,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook, HttpRequestHeadersHook

from egress import flowstate, reasons, replies
from egress.audit import new_decision_id


class BodyBudget:
    """Bytes of request bodies held in memory right now, against a fixed limit (0: none)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0

    def reserve(self, metadata: dict[str, Any], size: int) -> bool:
        """Grow a flow's reservation to ``size`` bytes; False if the budget cannot."""
        have = int(metadata.get(flowstate.BODY_RESERVED, 0))
        more = size - have
        if more <= 0 or not self.limit:
            return True
        if self.held + more > self.limit:
            return False
        self.held += more
        metadata[flowstate.BODY_RESERVED] = size
        return True

    def release(self, metadata: dict[str, Any]) -> None:
        self.held -= int(metadata.pop(flowstate.BODY_RESERVED, 0))


def install(budget: BodyBudget) -> None:
    cls = http_layer.HttpStream
    original = getattr(cls.check_body_size, "__egress_original__", cls.check_body_size)

    def check_body_size(self: Any, request: bool) -> Generator[Any, Any, bool]:
        stopped = yield from original(self, request)
        if stopped or not request or self.flow.request.stream:
            return stopped
        if self.request_body_buf:
            size = len(self.request_body_buf)
        else:
            try:
                size = expected_http_body_size(self.flow.request, None) or 0
            except ValueError:
                size = 0
        if size <= 0 or budget.reserve(self.flow.metadata, size):
            return False
        yield from _refuse(self, budget)
        return True

    check_body_size.__egress_original__ = original  # type: ignore[attr-defined]
    cls.check_body_size = check_body_size  # type: ignore[method-assign]


def _refuse(stream: Any, budget: BodyBudget) -> layer.CommandGenerator[None]:
    """Answer 413 body_too_large (the proxy's JSON refusal) and end the flow: the error hook
    runs (Limits and DecisionLog log it), then the connection is closed (HTTP/1) or the
    stream reset (HTTP/2) so the rest of the body is never read into memory."""
    budget.refused += 1
    flow = stream.flow
    message = "request bodies in memory would exceed the proxy's --body-memory-limit"
    if not stream.request_body_buf:
        yield HttpRequestHeadersHook(flow)  # as mitmproxy does: addons see the head
    stream.request_body_buf.clear()
    decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
    flow.metadata[flowstate.BODY_REFUSED] = True
    flow.response = replies.refusal(413, reasons.BODY_TOO_LARGE, decision_id, message)
    if flow.request.http_version.startswith("HTTP/1"):
        flow.response.headers["Connection"] = "close"
    flow.error = mflow.Error(f"{reasons.BODY_TOO_LARGE}: {message}")
    yield HttpErrorHook(flow)
    client = stream.context.client
    yield http_layer.SendHttp(ResponseHeaders(stream.stream_id, flow.response, False), client)
    yield http_layer.SendHttp(ResponseData(stream.stream_id, flow.response.content or b""), client)
    yield http_layer.SendHttp(ResponseEndOfMessage(stream.stream_id), client)
    yield http_layer.SendHttp(
        ResponseProtocolError(stream.stream_id, message, ErrorCode.REQUEST_TOO_LARGE), client
    )
    stream.client_state = stream.state_errored
    flow.live = False
