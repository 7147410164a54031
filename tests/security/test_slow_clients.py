"""Slow and idle clients must not starve other agents, and leave nothing behind when they go."""

from __future__ import annotations

import os
import socket
import time

import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess

pytestmark = pytest.mark.e2e


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_slowloris_does_not_starve_other_agents(world: World, proxy: ProxyProcess) -> None:
    baseline = _fds(proxy.proc.pid)
    slow: list[socket.socket] = []
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        s.sendall(f"CONNECT localhost:{world.origin.port} HTTP/1.1\r\nHost: ".encode())
        slow.append(s)
    try:
        latencies = []
        with http_client(proxy, world.alice) as c:
            for i in range(5):
                for s in slow:  # keep every slow client trickling
                    s.sendall(b"x")
                started = time.monotonic()
                r = c.get(f"{world.origin.url}/api/while-slow{i}")
                latencies.append(time.monotonic() - started)
                assert r.status_code == 200
        assert max(latencies) < 2.0, latencies
        # they are held, one fd each (the baseline may include a few connections of earlier tests)
        assert _fds(proxy.proc.pid) >= baseline + 140
    finally:
        for s in slow:
            s.close()
    deadline = time.monotonic() + 10
    while _fds(proxy.proc.pid) > baseline + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _fds(proxy.proc.pid) <= baseline + 2  # nothing leaked once they left
