"""The proxy is killed with SIGKILL mid-load; the log is compared with what clients saw answered.

``--log-fsync always`` writes each event before its answer leaves: nothing answered may be
missing. ``interval`` may lose only events of answers from the last interval before the kill.
Either way the surviving log verifies (no torn line, intact chain).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest

from egress.audit.verify import verify
from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import proxy_for

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("fsync", ["always", "interval"])
def test_sigkill_mid_load(world: World, tmp_path, fsync: str) -> None:
    p = proxy_for(world, tmp_path, "--log-fsync", fsync, secrets=False)
    answered: list[tuple[str, float]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(n: int) -> None:
        try:
            with http_client(p, world.alice) as c:
                i = 0
                while not stop.is_set():
                    r = c.get(f"{world.origin.url}/api/kill{n}-{i}")
                    with lock:
                        answered.append((r.headers["x-egress-decision-id"], time.monotonic()))
                    i += 1
        except Exception:  # noqa: S110 - the proxy is killed under the clients' feet
            pass

    threads = [threading.Thread(target=load, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    with lock:
        killed_at = time.monotonic()
        p.proc.send_signal(signal.SIGKILL)
        snapshot = list(answered)
    stop.set()
    for t in threads:
        t.join(10)
    p.proc.wait(10)
    logged = {e["decision_id"] for e in p.events()}
    missing = [(d, t) for d, t in snapshot if d not in logged]
    assert len(snapshot) > 50, "not enough load to mean anything"
    if fsync == "always":
        assert missing == []
    else:
        assert all(killed_at - t <= 1.0 + 0.5 for _, t in missing), missing
    report = verify([p.log_path])
    assert report.ok, report.problems  # whole lines only, chain intact, seal consistent
