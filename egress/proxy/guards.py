"""Guards mitmproxy does not have yet, installed once at start-up.

mitmproxy buffers an HTTP/1 request head until its blank line before any addon hook runs, with
no bound (its own source marks the spot "FIXME: protect against header size DoS"). A client
could grow that buffer without limit. This wraps ``Http1Server.read_headers``: once the
buffered, still incomplete head passes ``max_head_bytes`` the client gets 431 and the
connection is closed. Complete heads within the bound are unaffected and still meet the
request-level limits in ``egress.proxy.httpcheck``.

HTTP/1 messages the parser cannot carry are made safe here too:

- trailers after a chunked body (either direction) raise ``NotImplementedError`` inside
  mitmproxy, which kills the connection's layer and leaves the client waiting ~10 minutes.
  The proxy removes the chunked coding, and RFC 9112 7.1.2 lets a recipient that does so
  discard trailer fields: they are dropped, the message itself is forwarded. Dropping (rather
  than forwarding) also means a trailer can never carry a secret back to the agent;
- an upstream ``1xx`` informational answer other than ``101`` (``100``, ``102``, ``103 Early
  Hints``) would be taken as the final answer: HTTP/1 clients get a bodiless ``103`` and then
  hang, HTTP/2 clients a protocol error. They are dropped and the final answer awaited. Their
  headers (which could echo a secret) never reach the agent.

An upstream answer mitmproxy cannot parse becomes an error whose text quotes the offending
bytes (``Bad HTTP response line: b'...'``). Those bytes can echo the swapped secret, and the
text goes both into the 502 page the agent receives and into the decision event. The quoted
bytes are cut from every upstream protocol error before either sees it.

Both the 431 and the 400 mitmproxy's parser answers to a request line it cannot read happen
before a flow exists, so no addon hook sees them. Every answer needs its decision event: the
wrapper reports each such refusal to the registered reporter (``DecisionLog.unflowed``) with
the client connection, the status and a reason code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any

import h11
from mitmproxy import connection
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _base, _events, _http1

from egress import reasons
from egress.proxy import flowstate

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


# a complete informational head at the start of the buffer (101 switches protocols: kept)
_INFORMATIONAL = re.compile(
    rb"\A(?:\r?\n)*HTTP/1\.[01] 1(?!01)\d\d(?:[ \t][^\n]*)?\r?\n(?:[^\r\n][^\n]*\n)*\r?\n"
)


class _TrailerDroppingReader:
    """h11's body reader, but an end of message with trailer fields ends without them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.dropped = 0

    def __call__(self, buf: Any) -> Any:
        event = self.inner(buf)
        if isinstance(event, h11.EndOfMessage) and event.headers:
            self.dropped += len(event.headers)
            return h11.EndOfMessage()
        return event

    def read_eof(self) -> Any:
        return self.inner.read_eof()


def _install_trailers_and_informational() -> None:
    make_reader = getattr(_http1.make_body_reader, "__egress_original__", _http1.make_body_reader)

    def make_body_reader(expected_size: int | None) -> Any:
        reader = make_reader(expected_size)
        return _TrailerDroppingReader(reader) if expected_size is None else reader

    make_body_reader.__egress_original__ = make_reader  # type: ignore[attr-defined]
    _http1.make_body_reader = make_body_reader

    cls = _http1.Http1Client
    original = getattr(cls.read_headers, "__egress_original__", cls.read_headers)

    def read_headers(self: Any, event: events.ConnectionEvent) -> Generator[Any, Any, None]:
        if isinstance(event, events.DataReceived) and self.request is not None:
            while True:
                head = _INFORMATIONAL.match(bytes(self.buf))
                if head is None:
                    break
                self.buf.maybe_extract_at_most(head.end())  # dropped: wait for the final one
        yield from original(self, event)

    read_headers.__egress_original__ = original  # type: ignore[attr-defined]
    cls.read_headers = read_headers  # type: ignore[method-assign]


# a Python bytes repr (``b'...'``, ``bytearray(b"...")``) and everything after it
_BYTES_REPR = re.compile(r"(?<!\w)(?:bytearray\()?b['\"].*", re.DOTALL)
# any quoted value (``invalid content-length header: 'x'``), bytes or str, and what follows
_QUOTED = re.compile(r"(?:(?<!\w)(?:bytearray\()?b)?['\"].*", re.DOTALL)
BYTES_ELIDED = "<upstream bytes elided>"
# bytes an upstream chose, printed as hex: HTTP/2 GOAWAY debug data in h2's event repr
# (``additional_data:6768...``), or any long hex run
_HEX_DATA = re.compile(r"(?:additional_data:\s*)?(?:[0-9a-fA-F]{2}){6,}")


def elide_bytes(message: str) -> str:
    """An error text without the bytes it quotes (they may hold a real secret)."""
    return _HEX_DATA.sub(BYTES_ELIDED, _BYTES_REPR.sub(BYTES_ELIDED, message))


def elide_quoted(message: str) -> str:
    """An error text about an upstream answer, cut where it starts quoting that answer (or
    hex-printing bytes it sent: a GOAWAY's debug data can carry the swapped secret)."""
    return _HEX_DATA.sub(BYTES_ELIDED, _QUOTED.sub(BYTES_ELIDED, message, count=1))


def _install_error_elision() -> None:
    cls = http_layers.HttpStream
    original = getattr(cls.handle_protocol_error, "__egress_original__", cls.handle_protocol_error)

    def handle_protocol_error(self: Any, event: Any) -> Generator[Any, Any, Any]:
        if (
            isinstance(event, _events.ResponseProtocolError)
            and event.code is not _events.ErrorCode.CONNECT_FAILED
        ):
            # an answer was read (a failed dial read none, and its TLS text stays whole):
            # cut its quoted bytes before they reach flow.error and the 502 page
            event.message = elide_quoted(event.message)
        return (yield from original(self, event))

    handle_protocol_error.__egress_original__ = original  # type: ignore[attr-defined]
    cls.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]

    check = getattr(cls.check_invalid, "__egress_original__", cls.check_invalid)

    def check_invalid(self: Any, request: bool) -> Generator[Any, Any, Any]:
        # headers mitmproxy's validation refuses in an answer (an invalid name, say) are quoted
        # in its error text, for the 502 page and flow.error alike (red team N2): cut before
        # either sees it. A refused request's text quotes the agent's own bytes and says "from
        # client", which classifies it: kept (the log removes any real value in it)
        if request:
            return (yield from check(self, request))
        earlier = self.flow.error
        inner = check(self, request)
        sent: Any = None
        elided = False
        while True:
            try:
                cmd = inner.send(sent)
            except StopIteration as stop:
                return stop.value
            error = self.flow.error
            if error is not None and error is not earlier and not elided:
                error.msg = elide_quoted(error.msg)
                elided = True
                # the agent gets mitmproxy's 502, not the upstream's answer
                self.flow.metadata[flowstate.ANSWERED_STATUS] = 502
                self.flow.metadata[flowstate.UPSTREAM_REASON] = reasons.UPSTREAM_PROTOCOL_ERROR
            if isinstance(cmd, http_layers.SendHttp) and isinstance(
                cmd.event, _events.ResponseProtocolError
            ):
                cmd.event.message = elide_quoted(cmd.event.message)
            sent = yield cmd

    check_invalid.__egress_original__ = check  # type: ignore[attr-defined]
    cls.check_invalid = check_invalid  # type: ignore[method-assign]


def install(max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES) -> None:
    _install_trailers_and_informational()
    _install_error_elision()
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
