"""The mitmproxy addons of the request path. Their order is declared here and nowhere else.

    Identify -> Authorize -> SwapSecrets -> ScrubResponses -> Passthrough -> Upstream
        -> DecisionLog

mitmproxy calls each hook on the addons in this order, so for every request: identity is
known before the policy is asked, the policy has allowed before a placeholder is swapped, and
the decision log sees the final state of the flow (after scrubbing and error classification).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from egress.addons.authorize import Authorize
from egress.addons.decision_log import DecisionLog
from egress.addons.identify import Identify
from egress.addons.passthrough import Passthrough
from egress.addons.scrub import ScrubResponses
from egress.addons.swap import SwapSecrets
from egress.addons.upstream import Upstream
from egress.audit import DecisionLogWriter
from egress.credentials import IdentitiesFile
from egress.flowstate import ConnRegistry
from egress.policy import PolicyEngine
from egress.policy.kill_switch import KillSet
from egress.resolver import Resolver
from egress.secrets import SecretStore


def pipeline(
    *,
    identities: IdentitiesFile,
    engine: PolicyEngine,
    store: SecretStore,
    writer: DecisionLogWriter,
    resolver: Resolver,
    proxy_id: str | None = None,
    on_log_failure: str = "deny",
    report_only: bool = False,
    header_limits: tuple[int, int] = (64 * 1024, 128),
    mask_query: bool = True,
    mask_headers: bool = False,
    observers: list[Callable[[dict[str, Any]], None]] | None = None,
    kills: KillSet | None = None,
) -> list[object]:
    conns = ConnRegistry()
    audit_ok = (lambda: writer.healthy) if on_log_failure == "deny" else (lambda: True)
    return [
        Identify(identities, conns),
        Authorize(
            engine,
            conns,
            resolver,
            audit_ok=audit_ok,
            report_only=report_only,
            header_limits=header_limits,
        ),
        SwapSecrets(store),
        ScrubResponses(store),
        Passthrough(conns, kills),
        Upstream(conns),
        DecisionLog(
            writer,
            proxy_id,
            mask_query=mask_query,
            mask_headers=mask_headers,
            observers=observers,
            conns=conns,
        ),
    ]


__all__ = [
    "Authorize",
    "DecisionLog",
    "Identify",
    "ScrubResponses",
    "SwapSecrets",
    "Upstream",
    "pipeline",
]
