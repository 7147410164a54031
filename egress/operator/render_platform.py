"""What the proxy loads, rendered from every Agent: the policy data (rules and kill list,
a ConfigMap) and the identities (token hashes only, a Secret) in the system namespace."""

from __future__ import annotations

import json
from typing import Any

from egress.operator.spec import MANAGED, AgentSpec, Platform


def render_policy_data(specs: list[AgentSpec]) -> dict[str, Any]:
    """``data.egress`` for the proxy's policy: every agent's rules and the kill list."""
    agents: dict[str, dict[str, Any]] = {}
    for s in specs:
        agents.setdefault(s.owner, {})[s.agent] = {"rules": [dict(r) for r in s.rules]}
    killed = {s.key: True for s in specs if s.kill_switch}
    return {"egress": {"agents": agents, "killed": killed}}


def render_platform_state(
    specs: list[AgentSpec], token_hashes: dict[str, str], platform: Platform
) -> list[dict[str, Any]]:
    """The proxy-side objects: policy data (ConfigMap) and identities (Secret, hashes only)."""
    identities = {
        "version": 1,
        "agents": [
            {
                "user": s.owner,
                "agent": s.agent,
                "namespace": s.namespace,
                "token_sha256": token_hashes[s.key],
                "created": 0.0,
            }
            for s in specs
            if s.key in token_hashes
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "egress-policy-data",
                "namespace": platform.system_namespace,
                "labels": MANAGED,
            },
            "data": {"data.json": json.dumps(render_policy_data(specs), sort_keys=True)},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "egress-identities",
                "namespace": platform.system_namespace,
                "labels": MANAGED,
            },
            "type": "Opaque",
            "stringData": {"identities.json": json.dumps(identities)},
        },
    ]
