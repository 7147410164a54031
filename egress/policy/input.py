"""The decision input document, exactly as DESIGN.md draws it.

``{agent: {user, name, namespace}, phase, request: {scheme, host, port, method, path, query,
headers}, tls: {sni}, connect: {host, port}}``. ``phase`` is ``"connect"`` when the proxy
decides a CONNECT before any TLS (no method or path known yet) and ``"request"`` for every
request, inside a tunnel or in plain HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from egress.identity.model import Identity

DEFAULT_HEADER_ALLOWLIST = frozenset({"content-type", "accept", "user-agent", "upgrade"})


def build_input(
    identity: Identity,
    *,
    phase: str,
    host: str,
    port: int,
    scheme: str = "",
    method: str = "",
    path: str = "",
    query: str = "",
    headers: Iterable[tuple[str, str]] = (),
    header_allowlist: frozenset[str] = DEFAULT_HEADER_ALLOWLIST,
    sni: str | None = None,
    connect: tuple[str, int] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "agent": identity.as_policy_input(),
        "phase": phase,
        "request": {
            "scheme": scheme,
            "host": host.lower().rstrip("."),
            "port": port,
            "method": method.upper(),
            "path": path,
            "query": _query(query),
            "headers": _headers(headers, header_allowlist),
        },
        "tls": {"sni": sni or ""},
        "connect": {"host": connect[0].lower().rstrip("."), "port": connect[1]} if connect else {},
    }
    return doc


def _query(raw: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in parse_qsl(raw, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


def _headers(headers: Iterable[tuple[str, str]], allow: frozenset[str]) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for k, v in headers:
        lk = k.lower()
        if lk in allow:
            out[lk] = v if lk not in out else f"{out[lk]}, {v}"
    return out
