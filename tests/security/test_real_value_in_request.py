"""An agent that sends a real secret value is refused, and the value stays out of the log.

Red-team finding L14: once an agent had a real value (through any gap), it could send it to a
host the secret is not bound to, and the decision event (built from what the agent sent)
stored it verbatim in ``request.path`` and ``input.request.headers``. Over real sockets, both
policy engines, HTTP/1.1 and HTTP/2: the request never reaches the origin, the answer is 403
``secret_value_in_request``, and no log line holds the value in any form.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from tests.conftest import GITHUB_VALUE, OPENAI_VALUE, World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.e2e


def _shape(where: str, value: str) -> tuple[str, str, dict[str, str], bytes | None]:
    if where == "path":
        return "GET", f"/api/real/{quote(value, safe='')}", {}, None
    if where == "query":
        return "GET", f"/api/real?token={quote(value, safe='')}", {}, None
    if where == "header":
        return "GET", "/api/real", {"Authorization": f"Bearer {value}"}, None
    if where == "basic":
        basic = base64.b64encode(f"x:{value}".encode()).decode()
        return "GET", "/api/real", {"Authorization": f"Basic {basic}"}, None
    if where == "user-agent":
        return "GET", "/api/real", {"User-Agent": f"agent/1 {value}"}, None
    return (
        "POST",
        "/api/real",
        {"Content-Type": "application/json"},
        b'{"k": "%s"}' % value.encode(),
    )


@pytest.mark.parametrize("http2", [False, True], ids=["h1", "h2"])
@pytest.mark.parametrize(
    "value", [GITHUB_VALUE, OPENAI_VALUE], ids=["bound-here", "bound-elsewhere"]
)
@pytest.mark.parametrize("where", ["path", "query", "header", "basic", "user-agent", "body"])
def test_real_value_is_refused_and_not_logged(
    world: World, proxy: ProxyProcess, where: str, value: str, http2: bool
) -> None:
    method, path, headers, body = _shape(where, value)
    seen_before = len(world.origin.seen)
    with http_client(proxy, world.alice, http2=http2) as c:
        r = c.request(method, world.origin.url + path, headers=headers, content=body)
    assert r.status_code == 403, r.text
    assert r.headers["x-egress-reason"] == "secret_value_in_request"
    assert value not in r.text
    assert len(world.origin.seen) == seen_before  # nothing went upstream
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert event["result"]["reason"] == "secret_value_in_request"
    logged = proxy.log_path.read_text()
    for form in (value, quote(value, safe=""), base64.b64encode(f"x:{value}".encode()).decode()):
        assert form not in logged


def test_real_value_to_a_denied_path_is_kept_out_of_the_log(
    world: World, proxy: ProxyProcess
) -> None:
    """The policy refuses first (path not allowed); the event is cleaned all the same."""
    with http_client(proxy, world.alice) as c:
        r = c.get(f"{world.origin.url}/admin/{GITHUB_VALUE}", headers={"X-K": GITHUB_VALUE})
    assert r.status_code == 403
    event = proxy.event_for(r.headers["x-egress-decision-id"])
    assert GITHUB_VALUE not in str(event)
    assert world.placeholders["github"] in event["request"]["path"]
