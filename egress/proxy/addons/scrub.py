"""ScrubResponses: no answer carries a real secret value of the agent it goes to.

Every answer to an agent, from every flow (whether or not it swapped anything), is scrubbed of
every secret that agent could ever inject: a value stored upstream by one request ("create a
note with the key") comes back scrubbed on a later request that carried no placeholder.

- Headers (and their names) are scrubbed in ``responseheaders``, before mitmproxy sends them:
  a streamed answer's headers go out right after that hook.
- Bodies are scrubbed after every content-coding layer is undone (``gzip, gzip``, br, zstd...).
  A buffered body that needed a change is sent decoded, without Content-Encoding; a streamed
  body with a coding is always sent decoded. A coding the proxy cannot decode, for an agent
  with secrets, is refused: 502 ``response_undecodable`` (mid-stream: the answer is cut).
- Trailers (HTTP/2 ``grpc-message``...) are scrubbed in ``response``, before they are sent.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.proxy import flowstate, replies
from egress.secrets import SecretStore, charsets
from egress.secrets.codings import Decoder, Undecodable, codings, decode_all, is_identity
from egress.secrets.released import Released, others_for_answer
from egress.secrets.scrub import ScrubSet, scrub, scrub_pairs
from egress.secrets.stream import StreamScrubber
from egress.secrets.text_views import Transcoder, scrub_views

STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")
STREAM_ABOVE_BYTES = 8 * 1024 * 1024
_NOTHING = scrub_pairs(())


class ScrubResponses:
    def __init__(self, store: SecretStore, released: Released | None = None) -> None:
        self.store = store
        self.released = released
        # the scrub set each answer was checked with in `responseheaders`, reused in
        # `response` (one store query per answer); never in flow.metadata (it holds values)
        self._sets: weakref.WeakKeyDictionary[http.HTTPFlow, ScrubSet] = weakref.WeakKeyDictionary()
        # the last set each agent's answers were scrubbed with: when the store fails, an old
        # set still protects (values rarely change, and scrubbing a stale one is harmless)
        self._last: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}

    async def _scrub_set(
        self, identity: Identity, host: str, address: tuple[str, int] | None = None
    ) -> ScrubSet:
        """Every (value, placeholder) of the agent, plus every other agent's value that may
        have been stored on this host (released by a swap to this name or to the address the
        answer comes from, or bound to it in the local store). The stores keep their records
        current (file stamp, Vault TTL) and ``scrub_pairs`` caches by content, so an unchanged
        set costs a sort and a dictionary lookup. Store down: the agent's last set, else raise."""
        key = (identity.user, identity.agent)
        try:
            secrets = await self.store.agent_secrets(identity)
            own = tuple((value.reveal(), ref.placeholder) for ref, value in secrets)
            self._last[key] = own
        except SecretStoreError:
            if key not in self._last:
                raise
            own = self._last[key]
        others = others_for_answer(self.store, self.released, host, address)
        if not others:
            return scrub_pairs(sorted(own))
        return scrub_pairs(sorted(set(own).union(others)))

    async def _for(self, flow: http.HTTPFlow, *, headers_only: bool) -> ScrubSet | None:
        """The scrub set of this answer's agent; None if the proxy refused (its own answer)
        or the secret store failed (then the answer is replaced by a refusal)."""
        if flow.response is None or flow.metadata.get(flowstate.DENIED):
            return None
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        if identity is None:
            return _NOTHING
        known = self._sets.get(flow)
        if known is not None:
            return known
        try:
            address = flow.metadata.get(flowstate.DIAL_ADDRESS)
            s = self._sets[flow] = await self._scrub_set(identity, flow.request.host, address)
            return s
        except SecretStoreError:
            _refuse(
                flow,
                502,
                reasons.SECRET_UNAVAILABLE,
                "secret store unavailable",
                streamed=headers_only,
            )
            return None

    # -- headers, and the decision to stream -------------------------------------------------
    async def responseheaders(self, flow: http.HTTPFlow) -> None:
        s = await self._for(flow, headers_only=True)
        resp = flow.response
        if s is None or resp is None:
            return
        if s:
            _scrub_headers(resp.headers, s)
            if resp.data.reason and s.detect(resp.data.reason):
                resp.data.reason = scrub(resp.data.reason, s)  # HTTP/1 reason phrase
            odd = _transfer_codings(resp)
            if odd:
                # mitmproxy undoes only chunked; anything else would pass as it came, unread
                detail = f"transfer-coding {', '.join(odd)} cannot be checked for secrets"
                _refuse(flow, 502, reasons.RESPONSE_UNDECODABLE, detail, streamed=True)
                return
        if not _should_stream(resp):
            return  # buffered: the body (and trailers) are scrubbed in `response`
        if flow.request.method.upper() == "HEAD" or resp.status_code in (204, 304):
            s = _NOTHING  # no body follows: keep the headers' framing as they are
        names = codings(resp.headers.get_all("content-encoding"))
        decoder: Decoder | None = None
        if s and not is_identity(names):
            try:
                decoder = Decoder(names)
            except Undecodable as e:
                _refuse(flow, 502, reasons.RESPONSE_UNDECODABLE, str(e), streamed=True)
                return
            del resp.headers["content-encoding"]
        if s and "content-length" in resp.headers:
            # scrubbing (and decoding) change the length: the body is framed by chunks instead
            del resp.headers["content-length"]
            if not flow.request.is_http2 and not flow.request.is_http3:
                resp.headers["transfer-encoding"] = "chunked"
        charset: str | None = None
        if s:
            ctype = resp.headers.get("content-type", "")
            charset = charsets.declared(ctype)
            if charset is not None:  # the body goes out transcoded: say so
                resp.headers["content-type"] = charsets.with_utf8(ctype)
        scrubber = StreamScrubber(s) if s else None
        text = Transcoder(resp.headers.get("content-type", ""), charset, s) if s else None
        resp.stream = _stream(flow, scrubber, decoder, text)

    # -- body and trailers ---------------------------------------------------------------------
    async def response(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        pending = flow.metadata.get(_OWN_REFUSAL)
        if resp is not None and pending is not None:
            resp.trailers = None  # the refused answer's trailers are not passed on
            if pending and not resp.raw_content:
                # refused at the headers, and no upstream byte came to carry the refusal out:
                # mitmproxy sends it now, whole (it emptied the body it had not received)
                resp.content = pending.pop()
            return
        if resp is not None and flow.metadata.get(_CUT):
            resp.trailers = None
            flow.kill()  # undecodable mid-stream: cut the answer, the client sees it fail
            return
        s = await self._for(flow, headers_only=False)
        resp = flow.response
        if s is None or resp is None or not s:
            return
        if resp.trailers:
            _scrub_headers(resp.trailers, s)
        if resp.stream:
            return
        raw = resp.raw_content
        if not raw:
            return
        names = codings(resp.headers.get_all("content-encoding"))
        try:
            body = raw if is_identity(names) else decode_all(names, raw)
        except Undecodable as e:
            _refuse(flow, 502, reasons.RESPONSE_UNDECODABLE, str(e))
            return
        ctype = resp.headers.get("content-type", "")
        charset = charsets.declared(ctype) or charsets.sniffed(ctype, body[:4])
        clean = scrub_views(body, charset, s) if charset is not None else scrub(body, s)
        coded = not is_identity(names)
        if not coded and (clean is body or clean == body):
            return  # nothing to hide: the answer goes out exactly as it came
        # a coded body goes out decoded even when its decoded bytes were clean: a container
        # can carry bytes its decoder skips (gzip FNAME/FCOMMENT/FEXTRA, zstd skippable
        # frames, brotli metadata), and what the agent gets must be what was checked
        if "content-encoding" in resp.headers:
            del resp.headers["content-encoding"]
        resp.content = clean


_OWN_REFUSAL = "egress.scrub.refused"  # the answer is this addon's refusal (body pending)
_CUT = "egress.scrub.cut"  # a streamed answer turned undecodable after its headers went out


def _should_stream(resp: http.Response) -> bool:
    """Event streams, bodies without a length (chunked) and large ones are passed on as they
    arrive; everything else is buffered and scrubbed whole."""
    ctype = resp.headers.get("content-type", "").lower()
    length = resp.headers.get("content-length")
    big = length is not None and length.isdigit() and int(length) > STREAM_ABOVE_BYTES
    chunked = "chunked" in resp.headers.get("transfer-encoding", "").lower()
    return ctype.startswith(STREAM_TYPES) or big or (length is None and chunked)


def _stream(
    flow: http.HTTPFlow,
    scrubber: StreamScrubber | None,
    decoder: Decoder | None,
    text: Transcoder | None = None,
) -> Callable[[bytes], list[bytes]]:
    flow.metadata[flowstate.RESPONSE_BYTES] = 0

    def stream(chunk: bytes) -> list[bytes]:
        if flow.metadata.get(_CUT):
            return []  # undecodable earlier in this stream: nothing more goes out
        data = chunk
        if decoder is not None:
            try:
                data = decoder.feed(chunk) if chunk else decoder.finish()
            except Undecodable:
                flow.metadata[flowstate.DENIED] = reasons.RESPONSE_UNDECODABLE
                flow.metadata[_CUT] = True
                return []
            if chunk and not data:
                return []  # nothing decoded yet: feeding b"" would end the scrubber
        if text is not None:
            data = text.feed(data, final=not chunk)
            if chunk and not data:
                return []
        if scrubber is not None:
            data = scrubber.feed(data) + (scrubber.feed(b"") if not chunk and data else b"")
        flow.metadata[flowstate.RESPONSE_BYTES] += len(data)
        return [data] if data else []

    return stream


def _transfer_codings(resp: http.Response) -> list[str]:
    """Transfer-codings other than chunked (``gzip, chunked``): mitmproxy would forward them
    as they came."""
    names = [
        c.strip().lower()
        for value in resp.headers.get_all("transfer-encoding")
        for c in value.split(",")
        if c.strip()
    ]
    return [c for c in names if c not in ("chunked", "identity")]


def _scrub_headers(headers: http.Headers, s: ScrubSet) -> None:
    fields = headers.fields
    # one search over all of them first: most answers have nothing to replace
    if not s.detect(b"\n".join(name + b": " + value for name, value in fields)):
        return
    clean = tuple((scrub(name, s), scrub(value, s)) for name, value in fields)
    if clean != fields:
        headers.fields = clean


def _refuse(
    flow: http.HTTPFlow, status: int, reason: str, detail: str, *, streamed: bool = False
) -> None:
    """Replace the upstream answer by the proxy's refusal. For a streamed answer the refusal
    goes out as the body of the stream (its first chunk) and the upstream bytes are dropped."""
    decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
    flow.metadata[flowstate.DENIED] = reason
    refusal = replies.refusal(status, reason, decision_id, detail)
    pending: list[bytes] = []
    flow.metadata[_OWN_REFUSAL] = pending  # the refusal body, until it went out
    if streamed:
        pending.append(refusal.raw_content or b"")

        def stream(chunk: bytes) -> list[bytes]:
            return [pending.pop()] if pending else []

        refusal.stream = stream
    flow.response = refusal
