"""Per-agent limits: requests per minute (sliding window) and tokens per UTC day.

In memory, per gateway process: with several replicas each enforces its share (documented).
A request is admitted only while both limits have room; the token budget is charged after the
upstream reports usage, so one request may overshoot the budget by its own size, never more.
"""

from __future__ import annotations

import datetime
import time
from collections import deque
from dataclasses import dataclass, field

from egress import reasons
from egress.gateway.config import Limits


@dataclass
class _Agent:
    requests: deque[float] = field(default_factory=deque)
    day: str = ""
    tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True)
class Refusal:
    reason: str
    retry_after: int


def _today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def _seconds_to_midnight() -> int:
    now = datetime.datetime.now(datetime.UTC)
    tomorrow = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


class Budgets:
    def __init__(self) -> None:
        self._agents: dict[str, _Agent] = {}

    def _agent(self, key: str) -> _Agent:
        a = self._agents.setdefault(key, _Agent())
        today = _today()
        if a.day != today:
            a.day, a.tokens = today, 0
        return a

    def admit(self, key: str, limits: Limits, now: float | None = None) -> Refusal | None:
        now = time.monotonic() if now is None else now
        a = self._agent(key)
        while a.requests and now - a.requests[0] >= 60:
            a.requests.popleft()
        if a.tokens >= limits.tokens_per_day:
            return Refusal(reasons.TOKEN_BUDGET_EXHAUSTED, _seconds_to_midnight())
        if len(a.requests) >= limits.requests_per_minute:
            return Refusal(reasons.RATE_LIMITED, max(1, int(60 - (now - a.requests[0])) + 1))
        a.requests.append(now)
        return None

    def charge(self, key: str, prompt: int, completion: int) -> None:
        a = self._agent(key)
        a.tokens += prompt + completion
        a.tokens_in += prompt
        a.tokens_out += completion

    def usage(self) -> dict[str, tuple[int, int, int]]:
        """agent -> (tokens today, prompt tokens total, completion tokens total)."""
        return {k: (a.tokens, a.tokens_in, a.tokens_out) for k, a in self._agents.items()}
