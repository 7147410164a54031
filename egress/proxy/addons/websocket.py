"""WebSocketSecrets: the secret rules of HTTP, applied to every WebSocket message.

After the upgrade request was decided (and its own placeholders swapped) like any request,
mitmproxy relays messages, reassembled from their fragments and inflated when
permessage-deflate was negotiated, through the ``websocket_message`` hook:

- client -> server: a placeholder is swapped only when the upgrade's decision listed its secret,
  the secret's host binding admits the host, the agent owns it, and the socket is TLS (``wss``).
  Anything else: the message is dropped, the WebSocket closed with 1008 (policy violation,
  reason ``"<reason code> <decision id>"``) and ``flowstate.WS_REFUSED`` asks DecisionLog for
  one event (``kind: "websocket"``).
- server -> client: every real value of the agent (all its secrets, swapped here or not) is
  scrubbed, in every form ``egress.secrets.scrub`` knows. Ping/Pong payloads and the close
  reason (which browsers show to page scripts) are scrubbed too.

What mitmproxy's WebSocket layer cannot do for an addon (close with a code, control frames,
text re-fragmentation) is in ``egress.proxy.addons.websocket_layer``.
"""

from __future__ import annotations

import contextlib
from typing import Final

import orjson
from mitmproxy import http, websocket

from egress import reasons
from egress.audit import new_decision_id
from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.policy import Decision
from egress.proxy import flowstate
from egress.proxy.addons import websocket_layer
from egress.secrets import SecretStore, charsets
from egress.secrets.approve import SwapRefused, approve
from egress.secrets.placeholders import CORE_RE_BYTES, core_of
from egress.secrets.released import Released, others_for_answer
from egress.secrets.scrub import ScrubSet, scrub, scrub_pairs
from egress.secrets.text_views import scrub_views

POLICY_VIOLATION: Final = 1008


class WebSocketSecrets:
    def __init__(self, store: SecretStore, released: Released | None = None) -> None:
        self.store = store
        self.released = released
        websocket_layer.install()

    async def websocket_start(self, flow: http.HTTPFlow) -> None:
        # control frames can come before any message: their scrub pairs are ready at once
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        if identity is not None:
            with contextlib.suppress(SecretStoreError):  # retried (fail closed) per message
                await self._pairs(flow, identity)

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        ws = flow.websocket
        if ws is None or not ws.messages:
            return
        # mitmproxy keeps every message of the flow; a long-lived socket would grow without
        # bound (and keep swapped values in memory): only the current one is kept
        del ws.messages[:-1]
        message = ws.messages[-1]
        if websocket_layer.closing(flow):
            message.drop()  # a refused message was seen: nothing more is relayed either way
            return
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        try:
            if message.from_client:
                await self._swap(flow, message, identity)
            elif identity is not None:
                await self._scrub(flow, message, identity)
        except SwapRefused as r:
            self._refuse(flow, message, r)

    async def _swap(
        self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, who: Identity | None
    ) -> None:
        cores = sorted({m.decode() for m in CORE_RE_BYTES.findall(message.content)})
        if not cores:
            return
        decision: Decision | None = flow.metadata.get(flowstate.DECISION)
        if who is None:
            raise SwapRefused(reasons.PLACEHOLDER_UNKNOWN)
        if decision is None or not decision.allow:
            raise SwapRefused(reasons.SECRET_NOT_ALLOWED, "no decision allows a secret here")
        secure = flow.request.scheme == "https"  # wss://
        _, pairs = await approve(
            self.store,
            who,
            cores,
            decision,
            host=flow.request.host.lower(),
            encrypted=secure,
            scheme="wss" if secure else "ws",
            released=self.released,
            address=flow.metadata.get(flowstate.DIAL_ADDRESS),
        )
        message.content = _replace(message.content, pairs)

    async def _scrub(
        self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, who: Identity
    ) -> None:
        try:
            pairs = await self._pairs(flow, who)
        except SecretStoreError as e:
            # cannot tell what to scrub: the message is not delivered (fail closed)
            raise SwapRefused(reasons.SECRET_UNAVAILABLE, "secret store unavailable") from e
        if pairs:
            content = message.content
            # a message that shows a UTF-16/32 byte-order mark or NUL pattern is text to a
            # client that honours it: both views are scrubbed, as for an answer (red team N3)
            charset = charsets.sniffed("", content[:4])
            clean = scrub_views(content, charset, pairs) if charset else scrub(content, pairs)
            if clean != content:
                message.content = clean

    async def _pairs(self, flow: http.HTTPFlow, who: Identity) -> ScrubSet:
        """Scrub pairs of every secret the agent holds, read again for each message so a
        secret added or rotated while the socket is open is covered too."""
        secrets = await self.store.agent_secrets(who)
        own = {(value.reveal(), ref.placeholder) for ref, value in secrets}
        address = flow.metadata.get(flowstate.DIAL_ADDRESS)
        own.update(others_for_answer(self.store, self.released, flow.request.host, address))
        pairs = scrub_pairs(sorted(own))
        websocket_layer.set_scrub_pairs(flow, pairs)
        return pairs

    @staticmethod
    def _refuse(flow: http.HTTPFlow, message: websocket.WebSocketMessage, r: SwapRefused) -> None:
        message.drop()
        decision_id = new_decision_id()
        flow.metadata[flowstate.WS_REFUSED] = {
            "decision_id": decision_id,
            "reason": r.reason,
            "detail": r.detail,
            "bytes": len(message.content),
            "from_client": message.from_client,
        }
        websocket_layer.request_close(flow, POLICY_VIOLATION, f"{r.reason} {decision_id}")


def _replace(content: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """Each placeholder (with its cosmetic prefix, else by its bare core) becomes the real
    value; inside a JSON document the value is JSON-escaped so the document stays valid."""
    try:
        orjson.loads(content)
        as_json = content.lstrip()[:1] in (b"{", b"[", b'"')
    except orjson.JSONDecodeError:
        as_json = False
    text = content.decode("utf-8", "surrogateescape")
    for value, placeholder in pairs:
        encoded = orjson.dumps(value)[1:-1].decode() if as_json else value
        text = text.replace(placeholder, encoded)
        text = text.replace(core_of(placeholder), encoded)
    return text.encode("utf-8", "surrogateescape")
