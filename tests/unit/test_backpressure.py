"""Backpressure's accounting: queued bytes per client connection, and reads that wait on them.

The wire behaviour (a WebSocket streaming both ways no longer grows the proxy) is in
tests/security/test_websocket_memory.py; these check the counting that drives it.
"""

from __future__ import annotations

import asyncio
import gc

from mitmproxy.proxy import events, layer
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.http import RequestData, ResponseData
from mitmproxy.test import tflow
from mitmproxy.test.taddons import context as addon_context

from egress.proxy.addons import backpressure
from egress.proxy.addons.backpressure import QUEUE_LIMIT, Backlog, CountedQueue, backlog_of


def a_context() -> Context:
    with addon_context() as tctx:
        return Context(tflow.tclient_conn(), tctx.options)


def test_queue_counts_bytes_in_and_out_per_socket() -> None:
    context = a_context()
    client, server = backlog_of(context.client), backlog_of(context.server)
    queue = CountedQueue(context)
    queue.append(events.DataReceived(context.client, b"c" * 100))
    queue.append(events.ConnectionClosed(context.client))  # no data: counts nothing
    queue.append(events.DataReceived(context.server, b"s" * 70))
    queue.append(ResponseData(1, b"r" * 30))  # HTTP events: a response came from the server
    queue.append(RequestData(1, b"q" * 5))
    assert (client.queued, server.queued) == (105, 100)
    assert queue.popleft().data == b"c" * 100
    assert (client.queued, server.queued) == (5, 100)
    queue.popleft()
    queue.popleft()
    assert (client.queued, server.queued) == (5, 30)
    queue.popleft()
    queue.popleft()
    assert (client.queued, server.queued) == (0, 0)
    assert not queue


def test_dropped_queue_gives_its_bytes_back() -> None:
    context = a_context()
    queue = CountedQueue(context)
    queue.append(events.DataReceived(context.server, b"x" * (QUEUE_LIMIT + 1)))
    assert backlog_of(context.server).queued == QUEUE_LIMIT + 1
    del queue
    gc.collect()
    assert backlog_of(context.server).queued == 0


def test_backlog_per_client_connection() -> None:
    a, b = tflow.tclient_conn(), tflow.tclient_conn()
    assert backlog_of(a) is backlog_of(a)
    assert backlog_of(a) is not backlog_of(b)


def test_layers_get_a_counted_queue() -> None:
    backpressure.install()
    backpressure.install()  # idempotent: not wrapped twice
    context = a_context()
    made = layer.NextLayer(context)
    assert isinstance(made._paused_event_queue, CountedQueue)
    assert made._paused_event_queue.context is context
    init = layer.Layer.__init__
    assert init.__egress_original__ is not init  # type: ignore[attr-defined]
    assert not hasattr(init.__egress_original__, "__egress_original__")  # type: ignore[attr-defined]


async def test_room_waits_while_over_the_limit() -> None:
    backlog = Backlog()
    backlog.add(QUEUE_LIMIT + 10)
    waiter = asyncio.create_task(backlog.room())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # over the limit: the read waits
    backlog.remove(5)
    await asyncio.sleep(0.01)
    assert not waiter.done()  # still over
    backlog.remove(5)
    await asyncio.wait_for(waiter, 1)  # at the limit: reading resumes
    await asyncio.wait_for(backlog.room(), 1)  # and a later read does not wait at all


async def test_many_waiters_all_resume() -> None:
    backlog = Backlog()
    backlog.add(QUEUE_LIMIT * 2)
    waiters = [asyncio.create_task(backlog.room()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    backlog.remove(QUEUE_LIMIT * 2)
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
