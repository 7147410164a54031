"""When the secret store fails, answers are still scrubbed, or refused: never passed on blind.

The store file is damaged while the proxy runs (it then fails authentication, as on tampering).
An agent the proxy has served before keeps getting answers, scrubbed with its last known
secrets; an agent it has not served yet gets 502 ``secret_unavailable`` with its event.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import BOB_VALUE, GITHUB_VALUE
from tests.support.clients import http_client
from tests.support.proxy import proxy_for
from tests.support.views import leaks
from tests.support.wire import Got

pytestmark = pytest.mark.e2e


def _got(r) -> Got:
    return Got(r.status_code, [(k, v) for k, v in r.headers.raw], r.content)


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_store_down_scrubs_with_last_known_secrets_or_refuses(world, tmp_path, http2: bool) -> None:
    proxy = proxy_for(world, tmp_path)
    try:
        key = f"store-down-{http2}"
        world.origin.responder.stored[key] = f"held upstream: {GITHUB_VALUE} {BOB_VALUE}".encode()
        with http_client(proxy, world.alice, http2=http2) as c:
            assert c.get(f"{world.origin.url}/api/warm").status_code == 200
        store = proxy.state_dir / "secrets.enc"
        store.write_bytes(store.read_bytes()[:-40] + b"\0" * 41)  # damaged, other size
        time.sleep(1.3)  # past the store's re-check interval
        with http_client(proxy, world.alice, http2=http2) as c:
            r = c.get(f"{world.origin.url}/api/read?key={key}")
        assert r.status_code == 200
        assert not leaks(_got(r), GITHUB_VALUE)
        assert world.placeholders["github"].encode() in r.content
        time.sleep(1.3)  # the store tries its file again (and fails) for bob's answer
        with http_client(proxy, world.bob, http2=http2) as c:
            r = c.get(f"{world.origin.url}/api/read?key={key}")
        assert not leaks(_got(r), BOB_VALUE) and not leaks(_got(r), GITHUB_VALUE)
        if r.status_code == 200:
            # the local store still held the records it read before the damage (it re-reads
            # its file at most once a second, and another addon's read just failed): scrubbed
            # with them, which is as safe as refusing
            assert world.placeholders["github"].encode() in r.content
            return
        assert r.status_code == 502
        assert r.headers["x-egress-reason"] == "secret_unavailable"
        event = proxy.event_for(r.headers["x-egress-decision-id"])
        assert event["result"]["reason"] == "secret_unavailable"
        assert event["result"]["allow"] is False
    finally:
        proxy.stop()
