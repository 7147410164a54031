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

mitmproxy's WebSocket layer neither closes on ``flow.kill()`` nor lets addons see control
frames, so ``install_guard`` wraps two of its methods (like ``egress.mitm_guards``).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Generator
from typing import Any, Final

import orjson
import wsproto.events
from mitmproxy import connection, http, websocket
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import websocket as ws_layer
from wsproto import ConnectionState

from egress import flowstate, reasons
from egress.audit import new_decision_id
from egress.errors import SecretStoreError
from egress.identity import Identity
from egress.policy import Decision
from egress.secrets import SecretRef, SecretStore
from egress.secrets.placeholders import CORE_RE_BYTES, core_of
from egress.secrets.scrub import scrub, scrub_pairs

POLICY_VIOLATION: Final = 1008
_CLOSE: Final = "egress.ws_close"  # (code, reason) the guard sends once the hook returned
_CONTROL_MAX: Final = 125  # RFC 6455 5.5: control frame payloads are at most 125 bytes

# the latest scrub pairs of each live WebSocket, for control frames (sent synchronously)
_PAIRS: weakref.WeakKeyDictionary[http.HTTPFlow, list[tuple[bytes, bytes]]] = (
    weakref.WeakKeyDictionary()
)


class _Refused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail


class WebSocketSecrets:
    def __init__(self, store: SecretStore) -> None:
        self.store = store
        install_guard()

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
        if flow.metadata.get(_CLOSE):
            message.drop()  # a refused message was seen: nothing more is relayed either way
            return
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        try:
            if message.from_client:
                await self._swap(flow, message, identity)
            elif identity is not None:
                await self._scrub(flow, message, identity)
        except _Refused as r:
            self._refuse(flow, message, r)

    async def _swap(
        self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, who: Identity | None
    ) -> None:
        cores = sorted({m.decode() for m in CORE_RE_BYTES.findall(message.content)})
        if not cores:
            return
        decision: Decision | None = flow.metadata.get(flowstate.DECISION)
        if who is None or decision is None or not decision.allow:
            raise _Refused(reasons.PLACEHOLDER_UNKNOWN)
        host = flow.request.host.lower()
        pairs: list[tuple[str, str]] = []
        for core in cores:
            ref = await self._lookup(who, core)
            if ref.name not in decision.secrets:
                raise _Refused(
                    reasons.SECRET_NOT_ALLOWED,
                    f"policy does not allow secret {ref.name!r} on this WebSocket",
                )
            if not ref.admits_host(host):
                raise _Refused(
                    reasons.SECRET_HOST_NOT_BOUND,
                    f"secret {ref.name!r} is not bound to host {host!r}",
                )
            # ws:// would carry the value in clear text; a secret may opt in once the store
            # knows the flag (SecretRef.allow_plaintext), until then never
            if flow.request.scheme != "https" and not getattr(ref, "allow_plaintext", False):
                raise _Refused(
                    reasons.SECRET_PLAINTEXT_REFUSED,
                    f"secret {ref.name!r} would cross the network in clear text",
                )
            try:
                value = (await self.store.value(ref)).reveal()
            except SecretStoreError as e:
                raise _Refused(
                    reasons.SECRET_UNAVAILABLE, f"secret {ref.name!r} unavailable"
                ) from e
            pairs.append((value, ref.placeholder))
        message.content = _replace(message.content, pairs)

    async def _lookup(self, who: Identity, core: str) -> SecretRef:
        try:
            ref = await self.store.lookup(who, core)
        except SecretStoreError as e:
            raise _Refused(reasons.SECRET_UNAVAILABLE, "secret store unavailable") from e
        if ref is None or not ref.owned_by(who):
            raise _Refused(reasons.PLACEHOLDER_UNKNOWN)
        return ref

    async def _scrub(
        self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, who: Identity
    ) -> None:
        try:
            pairs = await self._pairs(flow, who)
        except SecretStoreError as e:
            # cannot tell what to scrub: the message is not delivered (fail closed)
            raise _Refused(reasons.SECRET_UNAVAILABLE, "secret store unavailable") from e
        if pairs:
            clean = scrub(message.content, pairs)
            if clean != message.content:
                message.content = clean

    async def _pairs(self, flow: http.HTTPFlow, who: Identity) -> list[tuple[bytes, bytes]]:
        """Scrub pairs of every secret the agent holds, read again for each message so a
        secret added or rotated while the socket is open is covered too."""
        secrets = await self.store.agent_secrets(who)
        pairs = scrub_pairs((value.reveal(), ref.placeholder) for ref, value in secrets)
        _PAIRS[flow] = pairs
        return pairs

    @staticmethod
    def _refuse(flow: http.HTTPFlow, message: websocket.WebSocketMessage, r: _Refused) -> None:
        message.drop()
        decision_id = new_decision_id()
        flow.metadata[flowstate.WS_REFUSED] = {
            "decision_id": decision_id,
            "reason": r.reason,
            "detail": r.detail,
            "bytes": len(message.content),
            "from_client": message.from_client,
        }
        flow.metadata[_CLOSE] = (POLICY_VIOLATION, f"{r.reason} {decision_id}")


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


# -- mitmproxy guards ------------------------------------------------------------------------
def install_guard() -> None:
    """Teach mitmproxy's WebSocket layer to close with the code an addon asked for, and to
    scrub control frames sent to the client. Idempotent."""
    layer_cls = ws_layer.WebsocketLayer
    relay = getattr(layer_cls.relay_messages, "__egress_original__", layer_cls.relay_messages)

    def relay_messages(self: Any, event: Any) -> Generator[Any, Any, None]:
        self.client_ws.egress_flow = self.flow
        yield from relay(self, event)
        close = self.flow.metadata.pop(_CLOSE, None)
        if close is not None and self._handle_event == self.relay_messages:
            self.flow.metadata[_CLOSE] = close  # later messages are dropped, never relayed
            yield from _close(self, *close)

    relay_messages.__egress_original__ = relay  # type: ignore[attr-defined]
    layer_cls.relay_messages = relay_messages  # type: ignore[method-assign]

    conn_cls = ws_layer.WebsocketConnection
    send2 = getattr(conn_cls.send2, "__egress_original__", conn_cls.send2)

    def scrubbing_send2(self: Any, event: wsproto.events.Event) -> commands.SendData:
        flow = getattr(self, "egress_flow", None)
        pairs = _PAIRS.get(flow) if flow is not None else None
        if pairs and isinstance(self.conn, connection.Client):
            event = _scrub_control(event, pairs)
        return send2(self, event)

    scrubbing_send2.__egress_original__ = send2  # type: ignore[attr-defined]
    conn_cls.send2 = scrubbing_send2  # type: ignore[method-assign]


def _scrub_control(
    event: wsproto.events.Event, pairs: list[tuple[bytes, bytes]]
) -> wsproto.events.Event:
    if isinstance(event, wsproto.events.Ping | wsproto.events.Pong):
        payload = scrub(bytes(event.payload), pairs)[:_CONTROL_MAX]
        return type(event)(payload=payload)
    if isinstance(event, wsproto.events.CloseConnection) and event.reason:
        reason = scrub(event.reason.encode(), pairs)[: _CONTROL_MAX - 2]
        return wsproto.events.CloseConnection(event.code, reason.decode("utf-8", "ignore"))
    return event


def _close(layer: Any, code: int, reason: str) -> Generator[Any, Any, None]:
    """What the layer itself does on a close frame, with our code: close frame to both peers,
    both connections closed, the end hook, then the layer ignores whatever still arrives."""
    frame = wsproto.events.CloseConnection(code=code, reason=reason)
    for ws in (layer.server_ws, layer.client_ws):
        if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            yield ws.send2(frame)
        yield commands.CloseConnection(ws.conn)
    layer.flow.websocket.timestamp_end = time.time()
    layer.flow.websocket.closed_by_client = False
    layer.flow.websocket.close_code = code
    layer.flow.websocket.close_reason = reason
    yield ws_layer.WebsocketEndHook(layer.flow)
    layer.flow.live = False
    layer._handle_event = layer.done
