"""``egress.policy.kill`` and engine counters: a killed agent is denied before the policy is
asked; counters come from ``stats()``, through the kill wrapper too, without ``__getattr__``."""

from __future__ import annotations

import asyncio
from typing import Any

from egress import reasons
from egress.policy.cache import CachedEngine, engine_stats
from egress.policy.decision import Decision
from egress.policy.kill import KillSet, KillSwitchEngine


class Allow:
    name = "fake"
    revision = "r1"

    def __init__(self) -> None:
        self.asked = 0
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        self.asked += 1
        return Decision(allow=True, reason=reasons.ALLOWED, engine=self.name)

    async def close(self) -> None:
        pass


def _input(user: str, agent: str) -> dict[str, Any]:
    return {"agent": {"user": user, "name": agent}, "request": {"host": "example.com"}}


def test_kill_set_replaces_whole() -> None:
    kills = KillSet()
    kills.replace({"u/a", "u/b"})
    assert kills.killed("u", "a") and len(kills) == 2
    kills.replace({"u/b"})
    assert not kills.killed("u", "a") and kills.killed("u", "b")


def test_killed_agent_is_denied_before_the_policy() -> None:
    inner = Allow()
    kills = KillSet()
    kills.replace({"u/a"})
    engine = KillSwitchEngine(inner, kills)
    d = asyncio.run(engine.decide(_input("u", "a")))
    assert not d.allow and d.reason == reasons.AGENT_KILLED
    assert d.revision == "r1" and d.engine == "fake"
    assert inner.asked == 0
    assert asyncio.run(engine.decide(_input("u", "b"))).allow
    assert inner.asked == 1


def test_stats_through_cache_and_kill_wrapper() -> None:
    inner = Allow()
    cached = CachedEngine(inner)
    engine = KillSwitchEngine(cached, KillSet())
    asyncio.run(engine.start())
    assert inner.started
    for _ in range(3):
        asyncio.run(engine.decide(_input("u", "a")))
    assert cached.stats() == {"hits": 2, "misses": 1}
    assert engine.stats() == {"hits": 2, "misses": 1}
    assert engine.revision == "r1"
    assert engine_stats(inner) == {}  # an engine without counters has none
