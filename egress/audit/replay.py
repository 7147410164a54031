"""``egress policy replay``: what would a candidate policy have decided on recorded traffic?

Each logged decision carries the policy input it was made on. Replay feeds those inputs to the
embedded engine loaded with the candidate policy and data, and reports every decision that
flips, grouped by agent and host. A deny→allow flip widens what agents can do, so it makes the
command exit 1 (a CI gate for policy changes).

What the recorded verdict was: the policy allowed when the event allowed (and was not a
report-mode ``would_deny``) or when a later station refused an allowed request (destination,
secret swap); it denied when the reason is a policy reason. Events without an input (refused
before the policy was asked) and engine failures are skipped. Masked query values are replayed
masked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from egress import reasons
from egress.audit.files import expand, read_lines
from egress.policy.engines import offline_engine

POLICY_DENIALS = frozenset(
    {
        reasons.AGENT_KILLED,
        reasons.AGENT_UNKNOWN,
        reasons.HOST_NOT_ALLOWED,
        reasons.SCHEME_NOT_ALLOWED,
        reasons.METHOD_NOT_ALLOWED,
        reasons.PATH_NOT_ALLOWED,
        reasons.DEFAULT_DENY,
    }
)
ENGINE_FAILURES = frozenset(
    {
        reasons.POLICY_ERROR,
        reasons.POLICY_TIMEOUT,
        reasons.POLICY_UNDEFINED,
        reasons.POLICY_MALFORMED,
    }
)


def recorded_verdict(event: dict[str, Any]) -> bool | None:
    """The policy's own verdict in a logged event, or None when there was none."""
    result = event.get("result") or {}
    reason = result.get("reason")
    if not event.get("input") or reason in ENGINE_FAILURES:
        return None
    if result.get("would_deny"):
        return False
    if result.get("allow"):
        return True
    return reason not in POLICY_DENIALS


@dataclass
class Flip:
    decision_id: str
    timestamp: str
    method: str
    path: str
    before: str
    after: str


@dataclass
class ReplayReport:
    events: int = 0
    replayed: int = 0
    skipped: int = 0
    widened: dict[tuple[str, str], list[Flip]] = field(default_factory=lambda: defaultdict(list))
    narrowed: dict[tuple[str, str], list[Flip]] = field(default_factory=lambda: defaultdict(list))

    @property
    def deny_to_allow(self) -> int:
        return sum(len(v) for v in self.widened.values())

    @property
    def allow_to_deny(self) -> int:
        return sum(len(v) for v in self.narrowed.values())


def iter_events(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in expand(paths):
        for _, raw, _ in read_lines(path):
            try:
                yield orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue


def replay(
    paths: list[Path],
    policy_dir: Path,
    data_file: Path | None,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    engine = offline_engine(policy_dir, data_file)
    memo: dict[bytes, tuple[bool, str]] = {}
    report = ReplayReport()
    for event in iter_events(paths):
        report.events += 1
        if progress is not None and report.events % 1000 == 0:
            progress(1000)
        before = recorded_verdict(event)
        if before is None:
            report.skipped += 1
            continue
        policy_input = event["input"]
        key = orjson.dumps(policy_input, option=orjson.OPT_SORT_KEYS)
        if key not in memo:
            d = engine.evaluate(policy_input)
            memo[key] = (d.allow, d.reason)
        after, after_reason = memo[key]
        report.replayed += 1
        if after == before:
            continue
        agent = event.get("agent") or {}
        req = event.get("request") or {}
        group = (f"{agent.get('user')}/{agent.get('name')}", f"{req.get('host')}:{req.get('port')}")
        flip = Flip(
            decision_id=event.get("decision_id", ""),
            timestamp=event.get("timestamp", ""),
            method=req.get("method", ""),
            path=req.get("path", ""),
            before=(event.get("result") or {}).get("reason", ""),
            after=after_reason,
        )
        (report.widened if after else report.narrowed)[group].append(flip)
    return report
