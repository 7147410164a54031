"""Where a request really goes: every name for the destination must agree.

Inside a CONNECT tunnel mitmproxy takes the destination of each request from its ``Host``
header (HTTP/1) or ``:authority`` (HTTP/2), not from the CONNECT line. An agent could open a
tunnel to an allowed host and then ask for another one. So every request is checked: CONNECT
target, TLS SNI, ``Host`` and ``:authority`` must name the same host and port, or the request is
refused with ``destination_mismatch`` (421). Plain-HTTP requests must have a ``Host`` that
agrees with their absolute URI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mitmproxy.net.http import url

from egress import reasons

DEFAULT_PORTS = {"http": 80, "https": 443}

_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.IGNORECASE)
# %3b too: an origin may decode an encoded ";" before or after it strips path parameters
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00|3b)", re.IGNORECASE)
_DOTS = re.compile(r"(\.|%2e){1,2}", re.IGNORECASE)


def normalize_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


@dataclass(frozen=True, slots=True)
class Mismatch:
    reason: str
    detail: str


def parse_authority(value: str, scheme: str) -> tuple[str, int] | None:
    try:
        host, port = url.parse_authority(value, check=True)
    except ValueError:
        return None
    return normalize_host(host), port if port is not None else DEFAULT_PORTS.get(scheme, 443)


def check_agreement(
    *,
    scheme: str,
    request_host: str,
    request_port: int,
    host_header: str | None,
    authority: str | None,
    sni: str | None,
    connect_target: tuple[str, int] | None,
) -> Mismatch | None:
    """None when all names agree, else why not. ``connect_target`` is None for plain HTTP."""
    dest = (normalize_host(request_host), request_port)
    if connect_target is not None:
        target = (normalize_host(connect_target[0]), connect_target[1])
        if dest != target:
            return Mismatch(
                reasons.DESTINATION_MISMATCH,
                f"request for {dest[0]}:{dest[1]} inside tunnel to {target[0]}:{target[1]}",
            )
        if sni and normalize_host(sni) != target[0]:
            return Mismatch(
                reasons.DESTINATION_MISMATCH, f"TLS SNI {sni!r} differs from CONNECT {target[0]!r}"
            )
    for label, value in (("Host", host_header), (":authority", authority)):
        if not value:
            continue
        parsed = parse_authority(value, scheme)
        if parsed is None:
            return Mismatch(reasons.DESTINATION_MISMATCH, f"unparsable {label} header")
        if parsed != dest:
            return Mismatch(
                reasons.DESTINATION_MISMATCH,
                f"{label} {value!r} differs from destination {dest[0]}:{dest[1]}",
            )
    return None


def path_is_ambiguous(path: str) -> bool:
    """Dot-segments, encoded separators, backslashes: an origin may resolve these to a path
    the policy never saw (``/repos/../admin``). Refused instead of guessed.

    Path parameters count too. Servlet containers strip ``;params`` from each segment before
    resolving dot-segments, so ``/allowed/..;/admin`` is ``/admin`` to them; other servers
    split on ``=`` or ``,`` inside parameters. A dot-segment in any piece of a segment's
    parameters (``/a;x=..``, ``/a/.;x/b``) is therefore ambiguous as well."""
    p = path.split("?", 1)[0]
    if p == "*":
        return False
    if not p.startswith("/"):
        return True
    if _DOT_SEGMENT.search(p) or _ENCODED_SEPARATOR.search(p) or "\\" in p:
        return True
    if ";" not in p:
        return False
    return any(
        _DOTS.fullmatch(piece)
        for segment in p.split("/")
        if ";" in segment
        for piece in re.split(r"[;=,]", segment)
    )
