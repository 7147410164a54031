"""The kill switch, proxy side: a killed agent is denied within about a second, even on a
tunnel that is already open (every request inside is decided again)."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import World
from tests.support.clients import get, open_tunnel, seconds_until_denied
from tests.support.proxy import proxy_for

pytestmark = pytest.mark.e2e


def test_kill_switch_reaches_a_live_tunnel_within_a_second(world: World, tmp_path) -> None:
    data_file = tmp_path / "data.json"
    data = json.loads(world.data_file.read_text())
    data_file.write_text(json.dumps(data))
    p = proxy_for(world, tmp_path, data_file=data_file, secrets=False)
    try:
        t = open_tunnel(p, world.alice, f"localhost:{world.origin.port}", "localhost")
        host = f"localhost:{world.origin.port}"
        assert t.request(get("/api/before", host))[0] == 200
        data["egress"]["killed"]["alice@example.com/triage-bot"] = True
        data_file.write_text(json.dumps(data))
        elapsed, headers = seconds_until_denied(t, "/api/after", host, time.monotonic())
        assert headers["x-egress-reason"] == "agent_killed"
        assert elapsed < 1.5, elapsed  # reload interval 1 s + one request
        t.close()
    finally:
        p.stop()
