"""mitmproxy's WebSocket layer, taught what WebSocketSecrets needs. Installed once, idempotent.

mitmproxy 12 relays WebSocket messages through an addon hook, but (a) ``flow.kill()`` does not
close a WebSocket, (b) control frames (Ping, Pong, Close) never reach an addon, and (c) a
modified text message is re-fragmented every 4000 bytes, each fragment decoded on its own with
``errors="replace"``, which breaks a multi-byte character cut at the boundary. So:

- ``request_close(flow, code, reason)``: once the current hook returned, both peers get a close
  frame with that code, both connections close, and nothing more is relayed;
- control frames to the client are scrubbed with the flow's latest scrub pairs
  (``set_scrub_pairs``); control frames to the server lose any placeholder-shaped payload (a
  raw placeholder never leaves the proxy, and a control frame cannot be swapped or refused);
- text is re-fragmented on UTF-8 character boundaries;
- one message is never buffered beyond ``--body-size-limit``: mitmproxy collects every
  fragment of a message before the hook sees it, so a larger message would be held whole. Once
  its fragments pass the limit the socket is closed with 1009 (message too big) and
  ``flowstate.WS_REFUSED`` asks DecisionLog for one event (reason ``body_too_large``).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Generator, Iterator
from typing import Any, Final

import wsproto.events
from mitmproxy import connection, ctx, http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import websocket as ws_layer
from mitmproxy.utils import human
from wsproto.connection import ConnectionState

from egress import reasons
from egress.audit import new_decision_id
from egress.proxy import flowstate
from egress.secrets.placeholders import CORE_RE_BYTES
from egress.secrets.scrub import ScrubSet, scrub

_CLOSE: Final = "egress.ws_close"  # flow.metadata: (code, reason) to close with
MESSAGE_TOO_BIG: Final = 1009  # RFC 6455 7.4.1
_CONTROL_MAX: Final = 125  # RFC 6455 5.5: control frame payloads are at most 125 bytes

# latest scrub pairs of each live WebSocket; kept here, never in flow.metadata (values)
_PAIRS: weakref.WeakKeyDictionary[http.HTTPFlow, ScrubSet] = weakref.WeakKeyDictionary()


def request_close(flow: http.HTTPFlow, code: int, reason: str) -> None:
    flow.metadata[_CLOSE] = (code, reason)


def closing(flow: http.HTTPFlow) -> bool:
    return _CLOSE in flow.metadata


def set_scrub_pairs(flow: http.HTTPFlow, pairs: ScrubSet) -> None:
    _PAIRS[flow] = pairs


def install() -> None:
    layer_cls = ws_layer.WebsocketLayer
    relay = getattr(layer_cls.relay_messages, "__egress_original__", layer_cls.relay_messages)

    def relay_messages(self: Any, event: Any) -> Generator[Any, Any, None]:
        self.client_ws.egress_flow = self.server_ws.egress_flow = self.flow
        yield from relay(self, event)
        close = self.flow.metadata.get(_CLOSE)
        if close is not None and self._handle_event == self.relay_messages:
            yield from _close(self, *close)

    relay_messages.__egress_original__ = relay  # type: ignore[attr-defined]
    layer_cls.relay_messages = relay_messages  # type: ignore[method-assign]

    conn_cls = ws_layer.WebsocketConnection
    events: Any = getattr(conn_cls.events, "__egress_original__", conn_cls.events)

    def bounded_events(self: Any) -> Iterator[wsproto.events.Event]:
        flow = getattr(self, "egress_flow", None)
        for event in events(self):
            message = isinstance(event, wsproto.events.Message)
            if flow is not None and message and not _within_limit(self, flow, event):
                return  # the rest is never read: the relay closes the socket with 1009
            yield event

    bounded_events.__egress_original__ = events  # type: ignore[attr-defined,unused-ignore]
    conn_cls.events = bounded_events

    send2 = getattr(conn_cls.send2, "__egress_original__", conn_cls.send2)

    def guarded_send2(self: Any, event: wsproto.events.Event) -> commands.SendData:
        flow = getattr(self, "egress_flow", None)
        if flow is not None and isinstance(self.conn, connection.Client):
            pairs = _PAIRS.get(flow)
            if pairs:
                event = _control(event, lambda data: scrub(data, pairs))
        elif flow is not None:
            event = _control(event, lambda data: b"" if CORE_RE_BYTES.search(data) else data)
        return send2(self, event)

    guarded_send2.__egress_original__ = send2  # type: ignore[attr-defined]
    conn_cls.send2 = guarded_send2  # type: ignore[method-assign]

    frag_cls = ws_layer.Fragmentizer
    fragment = getattr(frag_cls.__call__, "__egress_original__", frag_cls.__call__)

    def utf8_fragments(self: Any, content: bytes) -> Iterator[wsproto.events.Message[Any]]:
        if self.is_text and not _keeps_characters(content, self.fragment_lengths):
            yield from _text_fragments(self, content)
        else:
            yield from fragment(self, content)

    utf8_fragments.__egress_original__ = fragment  # type: ignore[attr-defined]
    frag_cls.__call__ = utf8_fragments  # type: ignore[method-assign]


def _limit() -> int | None:
    with contextlib.suppress(AttributeError, KeyError):
        return human.parse_size(ctx.options.body_size_limit)
    return None


def _within_limit(ws: Any, flow: http.HTTPFlow, event: wsproto.events.Message[Any]) -> bool:
    """Counts the bytes of the message being collected; False (and a 1009 close requested)
    once they pass the limit (text in its UTF-8 bytes, as mitmproxy buffers it)."""
    data = event.data.encode() if isinstance(event.data, str) else event.data
    size = getattr(ws, "egress_pending", 0) + len(data)
    ws.egress_pending = 0 if event.message_finished else size
    limit = _limit()
    if limit is None or size <= limit or closing(flow):
        return True
    decision_id = new_decision_id()
    flow.metadata[flowstate.WS_REFUSED] = {
        "decision_id": decision_id,
        "reason": reasons.BODY_TOO_LARGE,
        "detail": f"message over {limit} bytes",
        "bytes": size,
        "from_client": isinstance(ws.conn, connection.Client),
        "code": MESSAGE_TOO_BIG,
    }
    request_close(flow, MESSAGE_TOO_BIG, f"{reasons.BODY_TOO_LARGE} {decision_id}")
    return False


def _control(event: wsproto.events.Event, clean: Any) -> wsproto.events.Event:
    if isinstance(event, wsproto.events.Ping | wsproto.events.Pong):
        return type(event)(payload=clean(bytes(event.payload))[:_CONTROL_MAX])
    if isinstance(event, wsproto.events.CloseConnection) and event.reason:
        reason = clean(event.reason.encode())[: _CONTROL_MAX - 2]
        return wsproto.events.CloseConnection(event.code, reason.decode("utf-8", "ignore"))
    return event


def _continuation(content: bytes, offset: int) -> bool:
    return offset < len(content) and content[offset] & 0xC0 == 0x80


def _keeps_characters(content: bytes, lengths: list[int]) -> bool:
    """True when mitmproxy would reuse the original fragment sizes and none cuts a character."""
    if len(content) != sum(lengths):
        return False
    offset = 0
    for length in lengths[:-1]:
        offset += length
        if _continuation(content, offset):
            return False
    return True


def _text_fragments(frag: Any, content: bytes) -> Iterator[wsproto.events.Message[Any]]:
    offset = 0
    while len(content) - offset > frag.FRAGMENT_SIZE:
        end = offset + frag.FRAGMENT_SIZE
        while _continuation(content, end):
            end -= 1  # back to the first byte of the character
        yield frag.msg(content[offset:end], False)
        offset = end
    yield frag.msg(content[offset:], True)


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
