"""Guards mitmproxy does not have yet, installed once at start-up.

mitmproxy buffers an HTTP/1 request head until its blank line before any addon hook runs, with
no bound (its own source marks the spot "FIXME: protect against header size DoS"). A client
could grow that buffer without limit. This wraps ``Http1Server.read_headers``: once the
buffered, still incomplete head passes ``max_head_bytes`` the client gets 431 and the
connection is closed. Complete heads within the bound are unaffected and still meet the
request-level limits in ``egress.httpcheck``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _http1

DEFAULT_MAX_HEAD_BYTES = 96 * 1024


def install(max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
    cls = _http1.Http1Server
    original = getattr(cls.read_headers, "__egress_original__", cls.read_headers)

    def read_headers(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        yield from original(self, event)
        if (
            isinstance(event, events.DataReceived)
            and getattr(self.state, "__func__", None) is read_headers
            and len(self.buf) > max_head_bytes
        ):
            yield commands.SendData(
                self.conn, _http1.make_error_response(431, "request head too large")
            )
            yield commands.CloseConnection(self.conn)
            self.state = self.done

    read_headers.__egress_original__ = original  # type: ignore[attr-defined]
    cls.read_headers = read_headers  # type: ignore[method-assign]
