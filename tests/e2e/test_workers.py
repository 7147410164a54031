"""`egress serve --workers 2`: two processes on one port, both serving, one log each."""

from __future__ import annotations

import pytest

from egress.audit.files import expand
from egress.audit.verify import verify
from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import proxy_for

pytestmark = pytest.mark.e2e


def test_two_workers_share_the_port_and_log_separately(world: World, tmp_path) -> None:
    p = proxy_for(world, tmp_path, "--workers", "2")
    try:
        ids = []
        for _ in range(40):  # new connections each time: the kernel spreads them
            with http_client(p, world.alice) as c:
                r = c.get(f"{world.origin.url}/api/w")
                assert r.status_code == 200
                ids.append(r.headers["x-egress-decision-id"])
    finally:
        assert p.stop() == 0
    logs = expand([p.log_path])
    assert {f.name for f in logs} == {"decisions.log.w0", "decisions.log.w1"}
    events = {}
    for f in logs:
        for line in f.read_bytes().splitlines():
            import orjson

            e = orjson.loads(line)
            events[e["decision_id"]] = e["labels"]["proxy_id"]
    assert set(ids) <= set(events)
    assert {v.rsplit("-", 1)[1] for v in events.values()} == {"w0", "w1"}  # both served
    for f in logs:
        assert verify([f]).ok
