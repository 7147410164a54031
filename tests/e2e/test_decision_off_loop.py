"""A decision never blocks the event loop: while one agent's (deliberately slow) decision is
being evaluated, another agent's requests are answered.

Real parts: `egress serve` as a subprocess with the embedded engine (the policy compiled by
bin/opa, run by wasmtime on the --policy-workers threads), a real TLS origin, real sockets.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import proxy_for
from tests.support.slow_policy import slow_policies

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["cached", "uncached"])
def test_another_agent_is_answered_while_a_slow_decision_runs(
    world: World, tmp_path: Path, kind: str
) -> None:
    proxy = proxy_for(
        world, tmp_path, "--policy-dir", str(slow_policies(tmp_path, "bob@example.com", 1500))
    )
    try:
        with http_client(proxy, world.alice) as c:
            assert c.get(f"{world.origin.url}/api/warm").status_code == 200
        bob_refused: list[str] = []

        def bob() -> None:
            # a host bob may not reach: the proxy answers 403 the moment the decision is made,
            # so if that decision held the loop, bob would be done before alice
            with http_client(proxy, world.bob) as c, pytest.raises(httpx.ProxyError) as e:
                c.get(f"https://localhost:{world.forbidden.port}/slow")
            bob_refused.append(str(e.value))

        thread = threading.Thread(target=bob)
        thread.start()
        time.sleep(0.3)  # bob's CONNECT decision (~1 s of Wasm) is now being evaluated
        path = "/api/warm" if kind == "cached" else "/api/not-cached-yet"
        with http_client(proxy, world.alice) as c:
            answer = c.get(f"{world.origin.url}{path}")
        bob_was_pending = thread.is_alive()
        thread.join(60)
        assert answer.status_code == 200
        assert bob_was_pending, "alice waited for bob's decision: the loop was blocked"
        assert bob_refused and "403" in bob_refused[0]  # the slow decision itself completed
    finally:
        proxy.stop()
