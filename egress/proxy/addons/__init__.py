"""The mitmproxy addons of the request path. Their order is declared here and nowhere else.

    Backpressure -> Identify -> Sessions -> Limits -> RequestChecks -> Authorize -> RealValues
        -> SwapSecrets -> ScrubResponses -> WebSocketSecrets -> Passthrough -> Upstream
        -> DecisionLog

mitmproxy calls each hook on the addons in this order, so for every request: identity is
known (and re-checked on every request in a tunnel) before the connection caps count it and
before the policy is asked, the policy has allowed before a placeholder is swapped, and
the decision log sees the final state of the flow (after scrubbing and error classification).
Backpressure comes first: it only paces socket reads, so it sees every connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from egress.audit import DecisionLogWriter
from egress.destination.resolver import Resolver
from egress.identity.credentials import IdentitiesFile
from egress.policy import PolicyEngine
from egress.policy.kill import KillSet
from egress.proxy.addons.authorize import Authorize
from egress.proxy.addons.backpressure import Backpressure
from egress.proxy.addons.checks import RequestChecks
from egress.proxy.addons.decision_log import DecisionLog
from egress.proxy.addons.identify import Identify
from egress.proxy.addons.limits import Limits
from egress.proxy.addons.passthrough import Passthrough
from egress.proxy.addons.real_values import RealValues
from egress.proxy.addons.scrub import ScrubResponses
from egress.proxy.addons.sessions import Sessions, Timeouts
from egress.proxy.addons.swap import SwapSecrets
from egress.proxy.addons.upstream import Upstream
from egress.proxy.addons.websocket import WebSocketSecrets
from egress.proxy.body_budget import BodyBudget
from egress.proxy.flowstate import ConnRegistry
from egress.secrets import SecretStore
from egress.secrets.released import Released


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
    timeouts: Timeouts | None = None,
    max_conns_per_agent: int = 0,
    max_conns_unauthenticated: int = 0,
    max_conns_unauthenticated_per_source: int = 0,
    body_budget: BodyBudget | None = None,
) -> list[object]:
    conns = ConnRegistry()
    released = Released()  # values put on the wire: scrubbed from every agent's answers
    every_value = getattr(store, "every_value", None)  # a store that can list its values
    if every_value is not None:
        released.also_redact(every_value)
    writer.set_redactor(released.redact)  # ... and from every decision event
    audit_ok = (lambda: writer.healthy) if on_log_failure == "deny" else (lambda: True)
    return [
        Backpressure(),
        Identify(identities, conns),
        Sessions(identities, conns, timeouts or Timeouts(), kills),
        Limits(
            conns,
            body_budget or BodyBudget(0),
            max_per_agent=max_conns_per_agent,
            max_unauthenticated=max_conns_unauthenticated,
            max_unauthenticated_per_source=max_conns_unauthenticated_per_source,
        ),
        RequestChecks(conns, audit_ok=audit_ok, header_limits=header_limits),
        Authorize(engine, conns, resolver, audit_ok=audit_ok, report_only=report_only),
        RealValues(store),
        SwapSecrets(store, released),
        ScrubResponses(store, released),
        WebSocketSecrets(store, released),
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
    "Backpressure",
    "DecisionLog",
    "Identify",
    "Limits",
    "RequestChecks",
    "ScrubResponses",
    "Sessions",
    "SwapSecrets",
    "Upstream",
    "pipeline",
]
