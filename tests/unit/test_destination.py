from __future__ import annotations

import pytest

from egress.destination.agreement import check_agreement, path_is_ambiguous


def agree(**kw):
    base = dict(
        scheme="https",
        request_host="api.example.com",
        request_port=443,
        host_header="api.example.com",
        authority=None,
        sni="api.example.com",
        connect_target=("api.example.com", 443),
    )
    base.update(kw)
    return check_agreement(**base)


def test_all_agree() -> None:
    assert agree() is None
    assert agree(host_header="API.Example.com.:443", sni="api.example.com.") is None
    assert agree(sni=None) is None


@pytest.mark.parametrize(
    "kw",
    [
        {"request_host": "evil.com"},
        {"request_port": 8443},
        {"sni": "evil.com"},
        {"host_header": "evil.com"},
        {"host_header": "api.example.com:8443"},
        {"host_header": "bad host:x"},
        {"authority": "evil.com:443"},
        {"connect_target": ("other.example.com", 443)},
    ],
)
def test_disagreements(kw) -> None:
    m = agree(**kw)
    assert m is not None and m.reason == "destination_mismatch"


def test_plain_http_host_must_match_uri() -> None:
    ok = check_agreement(
        scheme="http",
        request_host="h.example",
        request_port=80,
        host_header="h.example",
        authority=None,
        sni=None,
        connect_target=None,
    )
    assert ok is None
    bad = check_agreement(
        scheme="http",
        request_host="h.example",
        request_port=80,
        host_header="x.example",
        authority=None,
        sni=None,
        connect_target=None,
    )
    assert bad is not None


@pytest.mark.parametrize(
    ("path", "ambiguous"),
    [
        ("/repos/a/b", False),
        ("/repos/a/b?x=../y", False),
        ("*", False),
        ("/a/../b", True),
        ("/a/./b", True),
        ("/..", True),
        ("/a/%2e%2e/b", True),
        ("/a/.%2E/b", True),
        ("/a%2fb", True),
        ("/a%5cb", True),
        ("/a%00b", True),
        ("/a\\b", True),
        ("relative", True),
        ("/a/..b/c", False),
        ("/a/b..", False),
        # path parameters: servlet containers drop ";..." before resolving dot-segments
        ("/allowed/..;/admin", True),
        ("/allowed/.;/admin", True),
        ("/allowed/..;x=1/admin", True),
        ("/a;x=..", True),
        ("/a;x=1,../b", True),
        ("/a;%2e%2e/b", True),
        ("/allowed/..%3b/admin", True),
        ("/a%3Bx", True),
        ("/a;v=1", False),
        ("/a;jsessionid=abc/b", False),
        ("/v1.0;x=y/b", False),
        ("/a;x=1.2", False),
        ("/a?x=..;/b", False),
    ],
)
def test_path_ambiguity(path: str, ambiguous: bool) -> None:
    assert path_is_ambiguous(path) is ambiguous
