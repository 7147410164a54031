"""One decision event per answered request and per refused CONNECT; nothing lost on SIGTERM."""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from egress.audit.events import REQUIRED_FIELDS
from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import ProxyProcess, basic, parse_response, proxy_for, raw_connect

pytestmark = pytest.mark.e2e


def _fresh_proxy(world: World, tmp_path) -> ProxyProcess:
    return proxy_for(world, tmp_path)


@pytest.fixture
def fresh(world: World, tmp_path) -> Iterator[ProxyProcess]:
    p = _fresh_proxy(world, tmp_path)
    yield p
    p.stop()


def test_exactly_one_correct_event_per_request(world: World, fresh: ProxyProcess) -> None:
    ph = world.placeholders["github"]
    answered: list[tuple[str, int]] = []
    with http_client(fresh, world.alice) as c:
        for i in range(5):
            r = c.get(f"{world.origin.url}/api/n{i}", headers={"Authorization": f"Bearer {ph}"})
            answered.append((r.headers["x-egress-decision-id"], r.status_code))
        for path in ("/admin", "/nope"):
            r = c.get(f"{world.origin.url}{path}")
            answered.append((r.headers["x-egress-decision-id"], r.status_code))
    sock, answer = raw_connect(
        fresh.port, "exfil.example.net:443", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    refused_connect_id = parse_response(answer)[1]["x-egress-decision-id"]
    answered.append((refused_connect_id, 403))

    assert fresh.stop() == 0  # graceful: flushes the writer
    events = fresh.events()
    assert len(events) == len(answered)
    by_id = {e["decision_id"]: e for e in events}
    assert len(by_id) == len(events)  # ids unique
    for decision_id, status in answered:
        event = by_id[decision_id]
        assert tuple(event) == REQUIRED_FIELDS
        assert event["schema"] == 1
        assert event["status"] == status
        assert event["path"] == "egress/decision"
        assert event["agent"] == {
            "user": "alice@example.com",
            "name": "triage-bot",
            "namespace": event["agent"]["namespace"],
        }
        assert event["metrics"]["decision_ms"] is not None
        assert event["labels"]["version"]
    allowed = [by_id[d] for d, s in answered if s == 200]
    for event in allowed:
        assert event["result"] == {
            **event["result"],
            "allow": True,
            "reason": "allowed",
            "rules": ["origin-api"],
            "engine": "embedded",
        }
        assert event["secrets"] == ["github"]
        assert event["request"]["host"] == "localhost"
        assert event["request"]["port"] == world.origin.port
        assert event["request"]["scheme"] == "https"
        assert event["bytes"]["response"] > 0
        assert event["metrics"]["total_ms"] > 0
    assert by_id[refused_connect_id]["kind"] == "connect"
    # the hash chain links every line to the previous one
    lines = fresh.log_path.read_bytes().splitlines()
    prev = "0" * 64
    for line in lines:
        assert orjson.loads(line)["prev_hash"] == prev
        prev = hashlib.sha256(line).hexdigest()


def test_graceful_shutdown_flushes_every_event(world: World, tmp_path) -> None:
    p = _fresh_proxy(world, tmp_path)
    n = 60

    def one(i: int) -> str:
        with http_client(p, world.alice) as c:
            r = c.get(f"{world.origin.url}/api/flush{i}")
            assert r.status_code == 200
            return r.headers["x-egress-decision-id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(n)))
    assert p.stop(signal.SIGTERM) == 0
    events = p.events()
    assert sorted(e["decision_id"] for e in events) == sorted(ids)
    assert any("decision events written" in line for line in p.output)
