"""The one builder of the policy data document the proxy, gateway and OPA read.

Shape: ``{"egress": {"agents": {user: {agent: {"rules": [...]}}}, "killed": {"user/agent": true}}}``
(policies/egress/*.rego reads ``data.egress``). Tests and benchmarks name their agents as
``"user/agent"`` keys so a document with several agents of one user stays one expression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Rule = Mapping[str, Any]


def policy_doc(agents: Mapping[str, Sequence[Rule]], killed: Iterable[str] = ()) -> dict[str, Any]:
    """The data document granting each ``"user/agent"`` its rules; ``killed`` lists the
    ``"user/agent"`` keys whose kill switch is on. ``killed`` is always present (possibly
    empty) so a test can flip a switch by editing the document in place."""
    tree: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for key, rules in agents.items():
        user, sep, agent = key.partition("/")
        if not sep or not user or not agent:
            raise ValueError(f"agent key must be 'user/agent', got {key!r}")
        tree.setdefault(user, {})[agent] = {"rules": [dict(r) for r in rules]}
    return {"egress": {"agents": tree, "killed": dict.fromkeys(killed, True)}}
