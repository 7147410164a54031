"""The gateway's last stations: forward to the upstream with the agent's key, relay, account.

The agent's own ``Authorization`` never reaches the upstream (only a short list of request
headers is copied); the key is added in the route's header format and scrubbed from whatever
comes back, whole or streamed. Upstream errors pass through with their status; a connection
that fails is a 502 refusal. A streamed answer is accounted when its stream ends, so the
event carries the bytes really sent and the tokens in the final usage chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from egress import reasons
from egress.gateway.call import Call, GatewayDeps, account
from egress.gateway.usage import StreamUsage, from_body
from egress.replies import DECISION_ID_HEADER
from egress.secrets import charsets
from egress.secrets.scrub import ScrubSet, scrub, scrub_pairs
from egress.secrets.stream import StreamScrubber
from egress.secrets.text_views import Transcoder, scrub_views

REDACTED: Final = "[redacted-by-egress]"
FORWARD_REQUEST_HEADERS: Final = frozenset(
    {"content-type", "accept", "openai-beta", "user-agent", "accept-encoding"}
)
FORWARD_RESPONSE_HEADERS: Final = frozenset(
    {
        "content-type",
        "cache-control",
        "retry-after",
        "x-request-id",
        "openai-model",
        "openai-processing-ms",
    }
)


def upstream_body(call: Call) -> bytes:
    """The body to send: for a stream, ask for the usage chunk so tokens can be attributed.

    The agent still receives that chunk; other bodies go out byte for byte as received.
    """
    payload = call.payload
    if not payload or not payload.get("stream"):
        return call.body
    opts = payload.get("stream_options")
    payload["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return orjson.dumps(payload)


def upstream_request(deps: GatewayDeps, call: Call) -> httpx.Request:
    """The request to the route's upstream: allowed headers, the key, the same path and query."""
    request, target = call.request, call.target
    headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARD_REQUEST_HEADERS}
    headers[target.auth_header] = target.auth_format.replace("{value}", call.key)
    url = target.base_url.rstrip("/") + "/" + request.path_params["path"]
    if request.url.query:
        url += "?" + request.url.query
    return deps.client.build_request(
        request.method, url, headers=headers, content=upstream_body(call)
    )


async def forward(deps: GatewayDeps, call: Call) -> httpx.Response:
    """Send upstream and return as soon as its headers arrive; raises ``httpx.HTTPError``."""
    return await deps.client.send(upstream_request(deps, call), stream=True)


async def answer(deps: GatewayDeps, call: Call, upstream: httpx.Response) -> Response:
    """Relay the upstream's answer with the key scrubbed, then account for it."""
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in FORWARD_RESPONSE_HEADERS}
    headers[DECISION_ID_HEADER] = call.decision_id
    reason = reasons.ALLOWED if upstream.status_code < 400 else reasons.UPSTREAM_ERROR
    pairs = scrub_pairs([(call.key, REDACTED)])
    ctype = upstream.headers.get("content-type", "")
    if ctype.startswith("text/event-stream"):
        charset = charsets.declared(ctype)
        if charset is not None:  # the stream goes out transcoded: say so
            headers["content-type"] = charsets.with_utf8(ctype)
        text = Transcoder(ctype, charset, pairs)
        relay = _relay(deps, call, upstream, pairs, reason, text)
        return StreamingResponse(relay, status_code=upstream.status_code, headers=headers)
    # read whole so the usage can be counted before the agent sees the answer; ``aread``
    # undoes the content-codings (the agent gets no Content-Encoding, so never coded bytes)
    try:
        raw = await upstream.aread()
    finally:
        await upstream.aclose()
    usage = from_body(raw)
    charset = charsets.declared(ctype) or charsets.sniffed(ctype, raw[:4])
    # a charset that hides ASCII: both views, the bytes and the text (red team N1)
    clean = scrub_views(raw, charset, pairs) if charset is not None else scrub(raw, pairs)
    status = upstream.status_code
    account(deps, call, allow=True, reason=reason, status=status, bytes_out=len(clean), usage=usage)
    return Response(clean, status_code=status, headers=headers)


async def _relay(
    deps: GatewayDeps,
    call: Call,
    upstream: httpx.Response,
    pairs: ScrubSet,
    reason: str,
    text: Transcoder,
) -> AsyncIterator[bytes]:
    """Stream chunks through the scrubber; account once the stream ends, however it ends.
    The chunks are read decoded (``aiter_bytes`` undoes gzip, br, zstd...): scrubbing coded
    bytes would find nothing, and the agent, sent no Content-Encoding, could decode them."""
    usage = StreamUsage()
    scrubber = StreamScrubber(pairs)
    sent = 0
    error = None
    try:
        async for chunk in upstream.aiter_bytes():
            usage.feed(chunk)
            decoded = text.feed(chunk, final=False)
            out = scrubber.feed(decoded) if decoded else b""  # feed(b"") would end it
            if out:
                sent += len(out)
                yield out
        rest = text.feed(b"", final=True)
        tail = (scrubber.feed(rest) if rest else b"") + scrubber.feed(b"")
        if tail:
            sent += len(tail)
            yield tail
    except httpx.HTTPError as e:
        error = f"{reasons.UPSTREAM_ERROR}: {type(e).__name__}"
    finally:
        await upstream.aclose()
        account(
            deps,
            call,
            allow=True,
            reason=reason if error is None else reasons.UPSTREAM_ERROR,
            status=upstream.status_code,
            bytes_out=sent,
            usage=usage.usage,
            error=error,
        )
