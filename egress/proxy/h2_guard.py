"""Bounds on what one HTTP/2 client connection may make the proxy do (rapid reset, CVE-2023-44487).

mitmproxy turns every HEADERS frame an agent sends into a flow: a layer, hooks, a policy
decision, an event. A client that opens a stream and resets it at once (HEADERS + RST_STREAM)
costs a few dozen bytes; the proxy paid the whole flow for each, queued behind each other, so
one connection of such pairs kept the proxy busy for minutes and grew it by GBs after the
client had left. This guard, wrapped around mitmproxy's ``Http2Server``:

- drops a stream the client opened and reset within the same read before anything above the
  HTTP/2 layer sees it: no flow, no hook, no policy decision, nothing retained. Nothing was
  answered, so no event is owed for it;
- counts every stream reset by the client; more than ``RESET_LIMIT`` within ``RESET_WINDOW``
  seconds closes the connection with GOAWAY ENHANCE_YOUR_CALM and one ``connection`` event
  (reason ``h2_abuse``). Streams already handed up are ended as on any close, with their events;
- keeps h2's advertised SETTINGS_MAX_CONCURRENT_STREAMS (``MAX_CONCURRENT_STREAMS``). h2 ends a
  connection that opens more with a PROTOCOL_ERROR GOAWAY; that closure now has its event too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
from mitmproxy import connection, ctx
from mitmproxy.proxy import events
from mitmproxy.proxy.commands import SendData
from mitmproxy.proxy.layers.http import _http2

from egress import reasons
from egress.proxy.addons.closures import connection_event, submit

MAX_CONCURRENT_STREAMS = 100  # h2's own advertised default, checked at start-up
RESET_LIMIT = 200
RESET_WINDOW = 10.0


class StreamBudget:
    """Resets one client connection made, and whether it went past the bounds."""

    def __init__(self, limit: int = RESET_LIMIT, window: float = RESET_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.recent: deque[float] = deque(maxlen=limit + 1)
        self.resets = 0
        self.dropped = 0
        self.abuse: str | None = None

    def note_resets(self, count: int, now: float) -> None:
        self.resets += count
        for _ in range(min(count, self.limit + 1)):
            self.recent.append(now)
        if len(self.recent) > self.limit and now - self.recent[0] <= self.window:
            self.abuse = f"more than {self.limit} streams reset by the client in {self.window:g}s"


def drop_cancelled(batch: list[Any]) -> tuple[list[Any], int, int]:
    """The h2 events of one read without the streams opened and reset inside it.

    Returns (events kept, streams reset by the client, streams dropped)."""
    opened = {e.stream_id for e in batch if isinstance(e, h2.events.RequestReceived)}
    resets = [e for e in batch if isinstance(e, h2.events.StreamReset) and e.remote_reset]
    cancelled = {e.stream_id for e in resets if e.stream_id in opened}
    if not cancelled:
        return batch, len(resets), 0
    kept = [e for e in batch if getattr(e, "stream_id", None) not in cancelled]
    return kept, len(resets), len(cancelled)


def _report(client: connection.Client, detail: str) -> None:
    log = ctx.master.addons.get("decisionlog") if hasattr(ctx, "master") else None
    conns = getattr(log, "conns", None)
    state = conns.peek(client) if conns is not None else None
    event = connection_event(
        client,
        reason=reasons.H2_ABUSE,
        detail=f"{detail}; connection closed by the proxy",
        identity=state.identity if state is not None else None,
        target=state.connect_target if state is not None else None,
    )
    submit(event)
    if state is not None:
        state.closed_by = f"{reasons.H2_ABUSE}: {detail}"


def _watch(layer: Any, budget: StreamBudget) -> None:
    """Filter what this connection's h2 state machine hands to mitmproxy."""
    receive = layer.h2_conn.receive_data

    def receive_data(data: bytes) -> list[Any]:
        try:
            batch = receive(data)
        except h2.exceptions.TooManyStreamsError:
            budget.abuse = f"more than {MAX_CONCURRENT_STREAMS} concurrent streams opened"
            raise
        kept, resets, dropped = drop_cancelled(batch)
        budget.dropped += dropped
        for e in batch:
            if isinstance(e, h2.events.DataReceived) and e not in kept:
                # the bytes still count against the connection's window: give them back
                layer.h2_conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
        if resets:
            budget.note_resets(resets, time.monotonic())
        return [] if budget.abuse else kept

    layer.h2_conn.receive_data = receive_data


def install() -> None:
    cls = _http2.Http2Server
    original = getattr(cls._handle_event, "__egress_original__", cls._handle_event)

    def _handle_event(self: Any, event: events.Event) -> Generator[Any, Any, None]:
        budget: StreamBudget | None = getattr(self, "_egress_budget", None)
        if budget is None:
            budget = self._egress_budget = StreamBudget()
            _watch(self, budget)
        yield from original(self, event)
        if budget.abuse is None or not isinstance(event, events.DataReceived):
            return
        detail, budget.abuse = budget.abuse, None
        if self._handle_event.__func__ is not _http2.Http2Connection.done:
            # still open: h2 closed nothing itself (too many streams is closed by h2)
            self.h2_conn.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            yield SendData(self.conn, self.h2_conn.data_to_send())
            yield from self.close_connection(f"{reasons.H2_ABUSE}: {detail}")
        _report(self.conn, f"{detail} ({budget.resets} resets, {budget.dropped} dropped)")

    _handle_event.__egress_original__ = original  # type: ignore[attr-defined]
    cls._handle_event = _handle_event  # type: ignore[method-assign]
