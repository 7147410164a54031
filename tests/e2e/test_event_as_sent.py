"""The decision event describes what the agent sent, never what went upstream (issue 13, item 8).

A placeholder in the path (or query, header, body) is swapped for the real value on the way
upstream; the event must still show the placeholder. Over HTTP/1.1 and HTTP/2, against the real
TLS origin, with the real proxy and both policy engines.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from tests.conftest import GITHUB_VALUE, World
from tests.support.clients import http_client
from tests.support.log_leaks import forms
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.e2e


def _request(world: World, ph: str, where: str) -> tuple[str, str, dict, bytes | None]:
    """(method, url, headers, body) with the placeholder in ``where`` and always in the path."""
    base = f"{world.origin.url}/api/as-sent/{ph}"
    if where == "path":
        return "GET", base, {}, None
    if where == "path_twice":
        return "GET", f"{base}/again/{ph}", {}, None
    if where == "query":
        return "GET", f"{base}?token={ph}&x=1", {}, None
    if where == "header":
        return "GET", base, {"Authorization": f"Bearer {ph}", "X-Api-Key": ph}, None
    return "POST", base, {"Content-Type": "application/json"}, b'{"token": "%s"}' % ph.encode()


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize("where", ["path", "path_twice", "query", "header", "body"])
def test_event_holds_the_placeholder_not_the_value(
    world: World, proxy: ProxyProcess, where: str, http2: bool
) -> None:
    ph = world.placeholders["github"]
    method, url, headers, body = _request(world, ph, where)
    with http_client(proxy, world.alice, http2=http2) as c:
        r = c.request(method, url, headers=headers, content=body)
    assert r.status_code == 200, r.text
    # the swap really happened: the origin got the real value in the path
    assert f"/api/as-sent/{quote(GITHUB_VALUE, safe='')}" in world.origin.seen[-1].path
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["request"]["path"].startswith(f"/api/as-sent/{ph}")
    assert event["request"]["method"] == method
    assert event["secrets"] == ["github"]
    # what the agent sent, byte for byte: the body length is the placeholder body's
    assert event["bytes"]["request"] == len(body or b"")
    time.sleep(0.2)  # the batched writer flushes within its interval
    log = proxy.log_path.read_bytes()
    assert not any(f in log for f in forms(GITHUB_VALUE))
