"""Backpressure: a connection is not read further while what it already sent waits in a layer.

mitmproxy reads every socket as fast as its peer sends. A layer that waits for an addon hook
(every WebSocket message is one, and so is every request head) queues whatever arrives for it
meanwhile, without limit. A WebSocket that streams small messages both ways keeps its layer
waiting most of the time, so the other direction's bytes piled up in that queue: ~1.2 MB of
proxy memory per MB relayed, for as long as the socket lived (red team F2), one agent able to
exhaust the memory every agent shares.

Here each layer's waiting queue counts the bytes it holds per connection they came from, and
the reads of that socket wait while more than ``QUEUE_LIMIT`` of its bytes are queued. TCP flow
control then slows the sender; nothing is dropped. Only the socket whose bytes wait is paused:
a request body queued while its upstream's TLS handshake runs must not stop the reads that
handshake needs. A layer that never resumes stops its socket's reads, and the Sessions sweeper
closes the connection as idle (``--tunnel-idle-timeout`` / ``--idle-timeout``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

from mitmproxy import connection
from mitmproxy.proxy import events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http._events import ResponseData
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from egress.proxy.addons.closures import handler_of

QUEUE_LIMIT: Final = 1 << 20  # bytes of one socket queued in layers before its reads wait


class Backlog:
    """Bytes from one socket queued in layers, and the reads of that socket waiting on them."""

    def __init__(self) -> None:
        self.queued = 0
        self._drained: asyncio.Event | None = None

    def add(self, n: int) -> None:
        self.queued += n

    def remove(self, n: int) -> None:
        self.queued -= n
        if self._drained is not None and self.queued <= QUEUE_LIMIT:
            self._drained.set()
            self._drained = None

    async def room(self) -> None:
        while self.queued > QUEUE_LIMIT:
            if self._drained is None:
                self._drained = asyncio.Event()
            await self._drained.wait()


_BACKLOGS: weakref.WeakKeyDictionary[connection.Connection, Backlog] = weakref.WeakKeyDictionary()


def backlog_of(conn: connection.Connection) -> Backlog:
    found = _BACKLOGS.get(conn)
    if found is None:
        found = _BACKLOGS[conn] = Backlog()
    return found


def _source(context: Context, event: events.Event) -> tuple[connection.Connection, int] | None:
    """The socket an event's bytes were read from, and how many; None for an event without."""
    data = getattr(event, "data", None)
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        return None
    if isinstance(event, events.ConnectionEvent):
        return event.connection, len(data)
    if isinstance(event, ResponseData):
        return context.server, len(data)
    return context.client, len(data)  # RequestData and anything else the client sent


class CountedQueue(collections.deque):  # type: ignore[type-arg]
    """A layer's queue of events that arrived while it waited; their bytes count in the
    Backlog of the socket they came from (mitmproxy only appends, pops left and iterates)."""

    def __init__(self, context: Context) -> None:
        super().__init__()
        self.context = context
        self.counted: collections.deque[tuple[Backlog, int] | None] = collections.deque()

    def append(self, event: events.Event) -> None:
        super().append(event)
        source = _source(self.context, event)
        if source is None:
            self.counted.append(None)
            return
        backlog = backlog_of(source[0])
        backlog.add(source[1])
        self.counted.append((backlog, source[1]))

    def popleft(self) -> events.Event:
        event: events.Event = super().popleft()
        counted = self.counted.popleft()
        if counted is not None:
            counted[0].remove(counted[1])
        return event

    def __del__(self) -> None:
        # a layer dropped with events still queued must not leave a socket unread
        for counted in self.counted:
            if counted is not None:
                counted[0].remove(counted[1])
        self.counted.clear()


def install() -> None:
    """Every layer created from now on counts its queue (idempotent)."""
    cls = layer.Layer
    original = getattr(cls.__init__, "__egress_original__", cls.__init__)

    def counted_init(self: Any, context: Any) -> None:
        original(self, context)
        self._paused_event_queue = CountedQueue(context)

    counted_init.__egress_original__ = original  # type: ignore[attr-defined]
    cls.__init__ = counted_init  # type: ignore[method-assign]


def _throttle(reader: Any, backlog: Backlog) -> None:
    read: Callable[[int], Awaitable[bytes]] | None = getattr(reader, "read", None)
    if read is None:
        return

    async def read_when_room(n: int = -1) -> bytes:
        await backlog.room()
        return await read(n)

    with contextlib.suppress(AttributeError):  # a stream type that cannot be wrapped
        reader.read = read_when_room


class Backpressure:
    def __init__(self) -> None:
        install()

    def client_connected(self, client: connection.Client) -> None:
        handler = handler_of(client)
        if handler is not None and client in handler.transports:
            _throttle(handler.transports[client].reader, backlog_of(client))

    def server_connected(self, data: ServerConnectionHookData) -> None:
        handler = handler_of(data.client)
        if handler is not None and data.server in handler.transports:
            _throttle(handler.transports[data.server].reader, backlog_of(data.server))
