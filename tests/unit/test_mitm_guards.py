"""The pieces of ``egress.proxy.guards`` on their own: which informational heads are dropped,
what a trailer section becomes, and what of an upstream error text survives. The same guards
are exercised over real sockets in tests/security/test_upstream_framing.py and
test_unflowed_answers.py."""

from __future__ import annotations

import h11
import pytest
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer

from egress.proxy.guards import (
    _INFORMATIONAL,
    BYTES_ELIDED,
    _TrailerDroppingReader,
    elide_bytes,
    elide_quoted,
)

SECRET = "ghs_REALVALUEnever2leave0the1proxy9XyZ"


@pytest.mark.parametrize(
    ("data", "dropped"),
    [
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 40),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 25),
        (b"HTTP/1.0 102 Processing\r\n\r\n", 27),
        (b"\r\nHTTP/1.1 199 X\r\nA: b\r\n\r\n", 26),
        (b"HTTP/1.1 103 E\nLink: x\n\n", 24),
        (b"HTTP/1.1 100\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 16),  # no reason phrase
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\n\r\n", None),
        (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n", None),  # not complete yet: wait
        (b"HTTP/1.1 1033 Odd\r\n\r\n", None),
        (b"HTTP/2 103 Early\r\n\r\n", None),
    ],
)
def test_which_informational_heads_are_dropped(data: bytes, dropped: int | None) -> None:
    m = _INFORMATIONAL.match(data)
    assert (m.end() if m else None) == dropped


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n",
        b"5\r\nhello\r\n0\r\nA: 1\r\nB: 2\r\nGrpc-Status: 0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5;e=1\r\nhello\r\n0;x\r\nX-Echo: " + SECRET.encode() + b"\r\n\r\n",
    ],
)
def test_trailer_section_is_dropped(body: bytes) -> None:
    reader = _TrailerDroppingReader(ChunkedReader())
    buf = ReceiveBuffer()
    buf += body
    events = []
    while (event := reader(buf)) is not None:
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    assert b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data)) == b"hello"
    assert isinstance(events[-1], h11.EndOfMessage) and list(events[-1].headers) == []
    assert reader.dropped == body.count(b": ")


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        (f"Cannot parse HTTP response: Bad HTTP response line: b'NOT {SECRET}'", "line: "),
        (f"HTTP/1 protocol error: illegal chunk header: bytearray(b'zz {SECRET}')", "header: "),
        (f"Cannot parse HTTP response: invalid content-length header: '{SECRET}'", "header: "),
        (f'Unknown HTTP version: "HTTP/9 {SECRET}"', "version: "),
        (f'unexpected server response: b"{SECRET}" and more', "response: "),
    ],
)
def test_upstream_error_text_loses_what_it_quotes(message: str, kept: str) -> None:
    out = elide_quoted(message)
    assert SECRET not in out and out.endswith(kept + BYTES_ELIDED)


@pytest.mark.parametrize(
    "message",
    ["server closed connection", "Client disconnected.", "killed", "upstream timed out"],
)
def test_error_text_without_quotes_is_kept(message: str) -> None:
    assert elide_quoted(message) == message == elide_bytes(message)


def test_log_side_cuts_bytes_reprs_only() -> None:
    """The event keeps a TLS error's quoted hostname, and still loses any bytes repr."""
    tls = "Certificate verify failed: hostname 'localhost' doesn't match"
    assert elide_bytes(tls) == tls
    assert SECRET not in elide_bytes(f"x: b'{SECRET}'")
