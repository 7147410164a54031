"""Request hygiene the HTTP parser leaves to us: refuse what an origin could read differently.

mitmproxy already refuses the classic smuggling shapes (CL+TE, duplicate or odd Content-Length,
unknown or non-final Transfer-Encoding, bad chunk framing). It does accept, and would forward,
a few things a strict origin or a second parser could interpret otherwise. They are refused
here, before the policy is asked, with ``400 http_malformed``:

- header names that are not RFC 9110 tokens; values holding NUL, CR, LF or other controls
  (C0, DEL, C1; a bare CR splits one header into two for some parsers), and obs-fold;
- a request target holding a control character (C0, space, DEL, C1) or bytes that are not
  UTF-8: forwarded, they reach origins that read them differently, and printed, they reach a
  log reader's terminal as escape sequences;
- a method that is not an upper-case token. Methods are case-sensitive (RFC 9110 9.1): ``get``
  is not ``GET``, yet the policy input upper-cases it. Refusing keeps what is decided, what is
  forwarded and what is logged the same method;
- an HTTP/1.1 request without exactly one Host header;
- an HTTP version other than 1.0, 1.1, 2 or 3;
- HTTP/2 and HTTP/3 connection-specific headers (RFC 9113 8.2.2).
"""

from __future__ import annotations

import re

from mitmproxy import http

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# C1 controls too (U+0080..U+009F, sent UTF-8 encoded): CSI and OSC for 8-bit terminals
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# C0 controls, space, DEL, C1 controls, and lone surrogates (mitmproxy decodes the target
# with surrogateescape, so bytes that are not UTF-8 show up as U+DC80..U+DCFF)
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f-\x9f\ud800-\udfff]")
_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Z]+$")
_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3"})
_H2_FORBIDDEN = frozenset(
    {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}
)


MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128


def too_large(
    req: http.Request, max_bytes: int = MAX_HEADER_BYTES, max_count: int = MAX_HEADERS
) -> str | None:
    """Header limits (431): the whole head is buffered before any hook runs, so these bound
    what is forwarded, not what mitmproxy reads (see README, known limits)."""
    fields = req.headers.fields
    if len(fields) > max_count:
        return f"{len(fields)} headers, limit {max_count}"
    size = sum(len(k) + len(v) + 4 for k, v in fields)
    if size > max_bytes:
        return f"{size} header bytes, limit {max_bytes}"
    return None


def malformed(req: http.Request) -> str | None:
    """Why this request must not be forwarded, or None."""
    if req.http_version not in _VERSIONS:
        return f"unsupported HTTP version {req.http_version!r}"
    # ``req.method`` is upper-cased by mitmproxy; the bytes on the wire are in ``data.method``
    if not _METHOD.match(req.data.method.decode("latin-1")):
        return "method must be an upper-case token (methods are case-sensitive)"
    if _BAD_TARGET.search(req.path):
        return "control character or non-UTF-8 byte in the request target"
    hosts = 0
    for name, value in req.headers.items(multi=True):
        if not _TOKEN.match(name):
            return f"invalid header name {name!r}"
        if _BAD_VALUE.search(value):
            return f"control character in header {name!r}"
        lname = name.lower()
        if lname == "host":
            hosts += 1
        if (req.is_http2 or req.is_http3) and lname in _H2_FORBIDDEN:
            return f"connection-specific header {name!r} in {req.http_version}"
        if (req.is_http2 or req.is_http3) and lname == "te" and value.strip().lower() != "trailers":
            return "TE other than 'trailers' in HTTP/2"
    if req.http_version == "HTTP/1.1" and hosts != 1:
        return "HTTP/1.1 needs exactly one Host header"
    if hosts > 1:
        return "more than one Host header"
    return None
