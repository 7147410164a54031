from __future__ import annotations

import httpx

from tests.conftest import World
from tests.support.proxy import ProxyProcess


def test_allowed_request_reaches_origin(world: World, proxy: ProxyProcess) -> None:
    a = world.alice
    with httpx.Client(proxy=proxy.url(a.name, a.token), verify=proxy.client_context()) as c:
        r = c.get(f"{world.origin.url}/api/hello")
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "/api/hello"
