"""Kill decisions, independent of where kills come from: the set of killed agents and the
engine wrapper that denies them before the policy is asked.

``KillSet`` is filled by ``egress.kube.agents.KillSwitchWatch`` (the Kubernetes API); the
policy data's ``data.egress.killed`` is decided by the policy itself. A killed agent is denied
``agent_killed`` inside live tunnels too, since each request there is decided.
"""

from __future__ import annotations

from typing import Any

from egress import reasons
from egress.policy.cache import engine_stats
from egress.policy.decision import Decision, PolicyEngine, deny


class KillSet:
    """The keys ``user/agent`` of killed agents, replaced whole (readers never see a half)."""

    def __init__(self) -> None:
        self._keys: frozenset[str] = frozenset()

    def replace(self, keys: set[str]) -> None:
        self._keys = frozenset(keys)

    def killed(self, user: str, agent: str) -> bool:
        return f"{user}/{agent}" in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class KillSwitchEngine:
    """A policy engine that denies killed agents first, then asks the wrapped engine."""

    def __init__(self, inner: PolicyEngine, kills: KillSet) -> None:
        self.inner = inner
        self.kills = kills
        self.name = inner.name

    @property
    def revision(self) -> str:
        return str(getattr(self.inner, "revision", ""))

    def stats(self) -> dict[str, int]:
        """The wrapped engine's counters (the kill check itself counts nothing)."""
        return engine_stats(self.inner)

    async def start(self) -> None:
        start = getattr(self.inner, "start", None)
        if start is not None:
            await start()

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        agent = policy_input.get("agent") or {}
        if self.kills.killed(str(agent.get("user", "")), str(agent.get("name", ""))):
            return deny(
                reasons.AGENT_KILLED,
                "killSwitch set on the Agent resource",
                engine=self.name,
                revision=self.revision,
            )
        return await self.inner.decide(policy_input)

    async def close(self) -> None:
        await self.inner.close()
