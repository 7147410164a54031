"""The decision value and the strict parser that turns an engine's answer into one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from egress import reasons

DECISION_PATH = "egress/decision"


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision explains itself: result, reason code, matched rules, engine and revision."""

    allow: bool
    reason: str
    secrets: frozenset[str] = frozenset()
    rules: tuple[str, ...] = ()
    engine: str = ""
    revision: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def deny(reason: str, detail: str = "", *, engine: str = "", revision: str = "") -> Decision:
    return Decision(False, reason, engine=engine, revision=revision, detail=detail)


def decision_from_document(doc: object, *, engine: str, revision: str) -> Decision:
    """Validate ``data.egress.decision``. Undefined, wrong shape or wrong types -> deny.

    ``allow`` must be the JSON boolean ``true``: a truthy string, 1, or a missing key never
    allows. This is what keeps an engine quirk (e.g. a ``default`` that comes back undefined)
    from failing open.
    """
    problem = _shape_problem(doc)
    if problem is not None:
        return deny(problem[0], problem[1], engine=engine, revision=revision)
    assert isinstance(doc, dict)  # _shape_problem checked it
    allow: bool = doc["allow"]
    reason: str = doc["reason"]
    secrets: list[str] = doc.get("secrets", [])
    rules: list[str] = doc.get("rules", [])
    if not allow and reason == reasons.ALLOWED:
        reason = reasons.DEFAULT_DENY
    extra = {
        k: v
        for k, v in doc.items()
        if k not in {"allow", "reason", "secrets", "rules"} and not k.startswith("_")
    }
    return Decision(
        allow=allow,
        reason=reason,
        secrets=frozenset(secrets) if allow else frozenset(),
        rules=tuple(rules),
        engine=engine,
        revision=revision,
        extra=extra,
    )


class PolicyEngine(Protocol):
    """Evaluate one decision input. Must never raise: errors become a deny ``Decision``."""

    name: str

    async def decide(self, policy_input: dict[str, Any]) -> Decision: ...

    async def close(self) -> None: ...


def _shape_problem(doc: object) -> tuple[str, str] | None:
    """(reason, detail) when the document is not a well-formed decision, else None."""
    if doc is None:
        return reasons.POLICY_UNDEFINED, "no decision document"
    if not isinstance(doc, dict):
        return reasons.POLICY_MALFORMED, "decision is not an object"
    allow, reason = doc.get("allow"), doc.get("reason")
    secrets, rules = doc.get("secrets", []), doc.get("rules", [])
    if not isinstance(allow, bool):
        missing = reasons.POLICY_MALFORMED if "allow" in doc else reasons.POLICY_UNDEFINED
        return missing, "allow is not a boolean"
    if not isinstance(reason, str) or not reason:
        return reasons.POLICY_MALFORMED, "reason is not a string"
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        return reasons.POLICY_MALFORMED, "secrets is not a list of names"
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        return reasons.POLICY_MALFORMED, "rules is not a list of ids"
    if allow and reason != reasons.ALLOWED:
        # an allow must say so; a contradictory document is a policy bug, not a permission
        return reasons.POLICY_MALFORMED, f"allow with reason {reason!r}"
    return None
