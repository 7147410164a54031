"""A host written with its trailing dot ("localhost.") is the same name: the request is decided
as "localhost", the upstream certificate is checked for "localhost", and the agent gets its
answer. Before, the upstream handshake never started and the client hung until its timeout.

Real parts: `egress serve`, a real TLS origin whose certificate names localhost, real sockets.
"""

from __future__ import annotations

import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("host", ["localhost.", "LOCALHOST.", "LocalHost."])
def test_trailing_dot_host_is_answered(world: World, proxy: ProxyProcess, host: str) -> None:
    with http_client(proxy, world.alice) as c:
        r = c.get(f"https://{host}:{world.origin.port}/api/dot")
    assert r.status_code == 200 and r.json()["path"] == "/api/dot"
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["request"]["host"].lower() == "localhost."  # recorded as the agent sent it
    assert event["result"]["allow"] is True


def test_trailing_dot_host_not_allowed_is_still_refused(world: World, proxy: ProxyProcess) -> None:
    with http_client(proxy, world.alice) as c:
        r = c.get(f"https://localhost.:{world.origin.port}/admin")
    assert r.status_code == 403 and r.json()["reason"] == "path_not_allowed"
