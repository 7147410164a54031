"""One budget for the bodies held in memory, across all flows of the process.

mitmproxy buffers each request body whole before the ``request`` hook (where the policy and
the placeholder swap act), and each response body whole before the ``response`` hook (where it
is scrubbed), bounded per flow by ``body_size_limit`` only: ten concurrent uploads or
downloads just under it hold ten times that in RSS. Streaming them instead would send an
upload upstream before the policy has decided, or a download to the agent before it is
scrubbed, so what the budget cannot hold is refused.

``install`` wraps ``HttpStream.check_body_size``, which mitmproxy calls before a request body
is read (with its Content-Length) and on every chunk it buffers of either body. Each flow
reserves what it holds: a request its announced size (or, chunked, what has arrived), a
response what has arrived. A reservation the budget cannot grant ends the flow with the
proxy's own JSON refusal, reason ``body_too_large``: 413 for a request (the connection closed,
or the HTTP/2 stream reset, so the rest is never read), 502 for a response (none of the
upstream's bytes reach the agent; the upstream request is aborted). Responses an addon streams
(scrubbed chunk by chunk) are never buffered and hold nothing. Reservations are released when
mitmproxy has handed the answer to the client connection (``flow_done``) or the flow failed
(the Limits addon's ``error`` hook, which also completes the refusal's event).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy import flow as mflow
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.proxy.layers.http._events import (
    ErrorCode,
    RequestProtocolError,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
)
from mitmproxy.proxy.layers.http._hooks import HttpErrorHook, HttpRequestHeadersHook

from egress import reasons
from egress.audit import new_decision_id
from egress.proxy import flowstate, replies


class BodyBudget:
    """Bytes of bodies held in memory right now, against a fixed limit (0: none)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0

    def reserve(self, metadata: dict[str, Any], side: str, size: int) -> bool:
        """Grow a flow's reservation for one side ("request", "response") to ``size`` bytes;
        False if the budget cannot."""
        held: dict[str, int] = metadata.setdefault(flowstate.BODY_RESERVED, {})
        more = size - held.get(side, 0)
        if more <= 0 or not self.limit:
            return True
        if self.held + more > self.limit:
            return False
        self.held += more
        held[side] = size
        return True

    def release(self, metadata: dict[str, Any]) -> None:
        self.held -= sum(metadata.pop(flowstate.BODY_RESERVED, {}).values())


def install(budget: BodyBudget) -> None:
    cls = http_layer.HttpStream
    original = getattr(cls.check_body_size, "__egress_original__", cls.check_body_size)

    def check_body_size(self: Any, request: bool) -> Generator[Any, Any, bool]:
        stopped = yield from original(self, request)
        if stopped:
            return True
        if request:
            if self.flow.request.stream:
                return False
            # reserve the announced size before a byte is read: refused on the head alone
            size = len(self.request_body_buf) or _announced(self.flow.request)
        else:
            # responses reserve what is buffered, chunk by chunk: a response an addon chose
            # to stream is never called here and holds nothing
            size = len(self.response_body_buf)
        if size <= 0 or budget.reserve(
            self.flow.metadata, "request" if request else "response", size
        ):
            return False
        budget.refused += 1
        yield from (_refuse_request(self) if request else _refuse_response(self))
        return True

    check_body_size.__egress_original__ = original  # type: ignore[attr-defined]
    cls.check_body_size = check_body_size  # type: ignore[method-assign]

    done = getattr(cls.flow_done, "__egress_original__", cls.flow_done)

    def flow_done(self: Any) -> Generator[Any, Any, None]:
        # the answer has been handed to the client's transport: only now is the flow's body
        # memory on its way out (the response hook runs before it is sent)
        budget.release(self.flow.metadata)
        yield from done(self)

    flow_done.__egress_original__ = done  # type: ignore[attr-defined]
    cls.flow_done = flow_done  # type: ignore[method-assign]


def _announced(request: Any) -> int:
    try:
        return expected_http_body_size(request, None) or 0
    except ValueError:
        return 0


def _refusal(stream: Any, status: int, message: str) -> layer.CommandGenerator[None]:
    """Mark the flow refused, run the error hook (Limits and DecisionLog log it), send the
    proxy's JSON refusal to the client."""
    flow = stream.flow
    decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
    flow.metadata[flowstate.BODY_REFUSED] = True
    flow.response = replies.refusal(status, reasons.BODY_TOO_LARGE, decision_id, message)
    if status == 413 and flow.request.http_version.startswith("HTTP/1"):
        flow.response.headers["Connection"] = "close"  # the rest of the upload is not read
    flow.error = mflow.Error(f"{reasons.BODY_TOO_LARGE}: {message}")
    yield HttpErrorHook(flow)
    client = stream.context.client
    yield http_layer.SendHttp(ResponseHeaders(stream.stream_id, flow.response, False), client)
    yield http_layer.SendHttp(ResponseData(stream.stream_id, flow.response.content or b""), client)
    yield http_layer.SendHttp(ResponseEndOfMessage(stream.stream_id), client)


def _refuse_request(stream: Any) -> layer.CommandGenerator[None]:
    """413, then the connection closed (HTTP/1) or the stream reset (HTTP/2): the rest of the
    upload is never read into memory."""
    flow = stream.flow
    message = "request bodies in memory would exceed the proxy's --body-memory-limit"
    if not stream.request_body_buf:
        yield HttpRequestHeadersHook(flow)  # as mitmproxy does: addons see the head
    stream.request_body_buf.clear()
    yield from _refusal(stream, 413, message)
    yield http_layer.SendHttp(
        ResponseProtocolError(stream.stream_id, message, ErrorCode.REQUEST_TOO_LARGE),
        stream.context.client,
    )
    stream.client_state = stream.state_errored
    flow.live = False


def _refuse_response(stream: Any) -> layer.CommandGenerator[None]:
    """502 to the client in place of the upstream's answer (none of its bytes were sent),
    and the upstream request aborted so the rest of its body is never read."""
    flow = stream.flow
    message = "response bodies in memory would exceed the proxy's --body-memory-limit"
    stream.response_body_buf.clear()
    yield from _refusal(stream, 502, message)
    yield http_layer.SendHttp(
        RequestProtocolError(stream.stream_id, message, ErrorCode.RESPONSE_TOO_LARGE),
        stream.context.server,
    )
    stream.server_state = stream.state_errored
    flow.live = False
