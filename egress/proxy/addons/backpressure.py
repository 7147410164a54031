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

HTTP/2 adds a second place answers wait: a stream's data beyond the client's flow-control
window sits in mitmproxy's send buffers. An agent that never opens its window made the proxy
download whole answers into memory (red team N6). An upstream socket is therefore not read
either while more than ``QUEUE_LIMIT`` of its client's HTTP/2 answers wait for that window;
whatever the client sends (its WINDOW_UPDATE) wakes the waiting reads.
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
from mitmproxy.proxy.layers.http import _http2, _http_h2
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


# the HTTP/2 connection that sends to each client: answers wait in its per-stream buffers while
# the client's flow-control window is shut (red team N6)
_H2_TO_CLIENT: weakref.WeakKeyDictionary[connection.Connection, Any] = weakref.WeakKeyDictionary()


def h2_buffered(client: connection.Connection) -> int:
    """Bytes of answers waiting for the client's HTTP/2 flow-control window."""
    h2c = _H2_TO_CLIENT.get(client)
    if h2c is None:
        return 0
    return sum(len(chunk.data) for queue in list(h2c.stream_buffers.values()) for chunk in queue)


# set when a client's HTTP/2 connection received something (a WINDOW_UPDATE, say): the reads
# waiting on its window look again at once
_H2_WOKEN: weakref.WeakKeyDictionary[Any, asyncio.Event] = weakref.WeakKeyDictionary()


def _install_h2_accounting() -> None:
    cls = _http2.Http2Server
    original = getattr(cls.__init__, "__egress_original__", cls.__init__)

    def registered_init(self: Any, context: Any) -> None:
        original(self, context)
        _H2_TO_CLIENT[context.client] = self.h2_conn

    registered_init.__egress_original__ = original  # type: ignore[attr-defined]
    cls.__init__ = registered_init  # type: ignore[method-assign]

    h2_cls = _http_h2.BufferedH2Connection
    receive = getattr(h2_cls.receive_data, "__egress_original__", h2_cls.receive_data)

    def receive_and_wake(self: Any, data: bytes) -> Any:
        events = receive(self, data)
        woken = _H2_WOKEN.get(self)
        if woken is not None:
            woken.set()
        return events

    receive_and_wake.__egress_original__ = receive  # type: ignore[attr-defined]
    h2_cls.receive_data = receive_and_wake  # type: ignore[method-assign]


def install() -> None:
    """Every layer created from now on counts its queue (idempotent)."""
    _install_h2_accounting()
    cls = layer.Layer
    original = getattr(cls.__init__, "__egress_original__", cls.__init__)

    def counted_init(self: Any, context: Any) -> None:
        original(self, context)
        self._paused_event_queue = CountedQueue(context)

    counted_init.__egress_original__ = original  # type: ignore[attr-defined]
    cls.__init__ = counted_init  # type: ignore[method-assign]


def _throttle(reader: Any, backlog: Backlog, client: connection.Client | None = None) -> None:
    """Reads of this socket wait while its own bytes queue in layers, and (a server socket,
    ``client`` given) while the client's HTTP/2 answers wait for its flow-control window."""
    read: Callable[[int], Awaitable[bytes]] | None = getattr(reader, "read", None)
    if read is None:
        return

    async def read_when_room(n: int = -1) -> bytes:
        await backlog.room()
        if client is not None:
            await _h2_room(client)
        return await read(n)

    with contextlib.suppress(AttributeError):  # a stream type that cannot be wrapped
        reader.read = read_when_room


async def _h2_room(client: connection.Client) -> None:
    """Wait until the client's HTTP/2 answers fit under the limit again: woken by whatever the
    client sends (its WINDOW_UPDATE), and looking every second anyway (a client that went away
    ends the wait)."""
    while h2_buffered(client) > QUEUE_LIMIT and client.connected:
        h2c = _H2_TO_CLIENT.get(client)
        if h2c is None:
            return
        woken = _H2_WOKEN.get(h2c)
        if woken is None:
            woken = _H2_WOKEN[h2c] = asyncio.Event()
        woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), 1.0)


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
            reader = handler.transports[data.server].reader
            _throttle(reader, backlog_of(data.server), data.client)
