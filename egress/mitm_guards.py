"""Guards mitmproxy does not have yet, installed once at start-up.

mitmproxy buffers an HTTP/1 request head until its blank line before any addon hook runs, with
no bound (its own source marks the spot "FIXME: protect against header size DoS"). A client
could grow that buffer without limit. This wraps ``Http1Server.read_headers``: once the
buffered, still incomplete head passes ``max_head_bytes`` the client gets 431 and the
connection is closed. Complete heads within the bound are unaffected and still meet the
request-level limits in ``egress.httpcheck``.

Both that 431 and the 400 mitmproxy's parser answers to a request line it cannot read happen
before a flow exists, so no addon hook sees them. Every answer needs its decision event: the
wrapper reports each such refusal to the registered reporter (``DecisionLog.unflowed``) with
the client connection, the status and a reason code.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import connection
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers.http import _base, _http1

from egress import reasons

DEFAULT_MAX_HEAD_BYTES = 96 * 1024

# (client connection, status answered, reason code, short detail) -> None
Reporter = Callable[[connection.Client, int, str, str], None]
_reporter: list[Reporter] = []


def set_reporter(report: Reporter | None) -> None:
    """Where refusals made before a flow exists are reported (one reporter per process)."""
    _reporter[:] = [report] if report is not None else []


def _report(client: connection.Client, status: int, reason: str, detail: str) -> None:
    for report in _reporter:
        report(client, status, reason, detail)


def _parser_refusal(cmd: object) -> int | None:
    """The status of an error answer mitmproxy's HTTP/1 parser sends by itself, or None."""
    if isinstance(cmd, commands.SendData) and cmd.data.startswith(b"HTTP/1.1 4"):
        try:
            return int(cmd.data[9:12])
        except ValueError:
            return 400
    return None


def install(max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
    cls = _http1.Http1Server
    original = getattr(cls.read_headers, "__egress_original__", cls.read_headers)

    def read_headers(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        # delegate by hand (not ``yield from``) to see each command on its way out
        inner = original(self, event)
        refused: int | None = None
        detail = "request head refused by the HTTP parser"
        flowed = False
        sent: Any = None
        while True:
            try:
                cmd = inner.send(sent)
            except StopIteration:
                break
            if isinstance(cmd, _base.ReceiveHttp):
                flowed = True  # a flow exists: its error hook writes the event
            elif isinstance(cmd, commands.Log):
                detail = cmd.message.rsplit(": ", 1)[-1][:200]
            elif refused is None:
                refused = _parser_refusal(cmd)
            sent = yield cmd
        if refused is not None and not flowed:
            _report(self.conn, refused, reasons.HTTP_MALFORMED, detail)
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
            _report(
                self.conn,
                431,
                reasons.HEADERS_TOO_LARGE,
                f"request head past {max_head_bytes} bytes without its end",
            )

    read_headers.__egress_original__ = original  # type: ignore[attr-defined]
    cls.read_headers = read_headers  # type: ignore[method-assign]
