"""Authorize: ask the policy engine, refuse before anything goes upstream.

A request reaches Authorize already checked by RequestChecks (identity, audit log, header size,
well-formedness, destination agreement, unambiguous path). Authorize only decides:
  1. policy decision ``data.egress.decision`` allows           -> 403 <policy reason>
  2. the destination resolves to an address egress may dial   -> 403 destination_forbidden
     (resolved once per client connection; that address is the one dialled)
A CONNECT is decided with ``phase: "connect"`` (host and port only) and refused before TLS
when no rule could ever admit the target (503 audit_unavailable first when the decision log
is not accepting events).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.destination.resolver import DestinationError, Resolver
from egress.identity.model import Identity
from egress.policy import Decision, PolicyEngine, build_input, deny
from egress.policy.input import DEFAULT_HEADER_ALLOWLIST
from egress.proxy import flowstate
from egress.proxy.addons.checks import refuse
from egress.proxy.flowstate import ConnRegistry

# Report mode softens policy denials only: a kill switch, an unknown agent and every engine
# failure still deny (report mode is for rolling out rules, not for outages).
_NEVER_REPORTED = frozenset(
    {
        reasons.AGENT_KILLED,
        reasons.AGENT_UNKNOWN,
        reasons.POLICY_ERROR,
        reasons.POLICY_TIMEOUT,
        reasons.POLICY_UNDEFINED,
        reasons.POLICY_MALFORMED,
    }
)


class Authorize:
    def __init__(
        self,
        engine: PolicyEngine,
        conns: ConnRegistry,
        resolver: Resolver,
        header_allowlist: frozenset[str] = DEFAULT_HEADER_ALLOWLIST,
        audit_ok: Callable[[], bool] = lambda: True,
        report_only: bool = False,
    ) -> None:
        self.report_only = report_only  # global report mode (--report-only)
        self.engine = engine
        self.conns = conns
        self.resolver = resolver
        self.audit_ok = audit_ok  # False while decision events cannot be written
        self.header_allowlist = header_allowlist

    async def _check_destination(self, flow: http.HTTPFlow, host: str, port: int) -> bool:
        """Resolve once per client connection and keep the checked address for the dial."""
        state = self.conns.get(flow.client_conn)
        key = (host.lower(), port)
        if key in state.resolved:
            return True
        try:
            state.resolved[key] = await self.resolver.resolve(host, port)
        except DestinationError as e:
            refuse(flow, 403, e.reason, e.message)
            return False
        return True

    async def _decide(self, flow: http.HTTPFlow, policy_input: dict[str, Any]) -> Decision:
        started = time.perf_counter()
        try:
            decision = await self.engine.decide(policy_input)
        except Exception as e:  # an engine must not raise; if one does, fail closed
            decision = deny("policy_error", type(e).__name__, engine=self.engine.name)
        flow.metadata[flowstate.DECISION_MS] = round((time.perf_counter() - started) * 1000, 3)
        flow.metadata[flowstate.INPUT] = policy_input
        if not decision.allow and self._reportable(decision):
            # report mode: log what the policy would have denied, let the request through
            flow.metadata[flowstate.WOULD_DENY] = decision.reason
            decision = dataclasses.replace(decision, allow=True, secrets=frozenset())
        flow.metadata[flowstate.DECISION] = decision
        return decision

    def _reportable(self, decision: Decision) -> bool:
        if decision.reason in _NEVER_REPORTED:
            return False
        return self.report_only or decision.extra.get("report") is True

    async def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        if identity is None:
            return
        flow.metadata[flowstate.DECISION_ID] = new_decision_id()
        if not self.audit_ok():
            refuse(flow, 503, reasons.AUDIT_UNAVAILABLE)
            return
        policy_input = build_input(
            identity,
            phase="connect",
            host=flow.request.host,
            port=flow.request.port,
            connect=(flow.request.host, flow.request.port),
        )
        decision = await self._decide(flow, policy_input)
        if not decision.allow:
            refuse(flow, 403, decision.reason, decision.detail)
            return
        if not await self._check_destination(flow, flow.request.host, flow.request.port):
            return
        if decision.extra.get("passthrough") is True:
            if decision.secrets:
                refuse(
                    flow,
                    403,
                    reasons.POLICY_MALFORMED,
                    "a host marked inspect: false cannot have secrets injected",
                )
                return
            state = self.conns.get(flow.client_conn)
            state.passthrough = True
            state.allowed_dials.add((flow.request.host.lower(), flow.request.port))
            state.tunnel = {
                "decision_id": flow.metadata[flowstate.DECISION_ID],
                "decision": decision,
                "input": policy_input,
                "decision_ms": flow.metadata.get(flowstate.DECISION_MS),
                "host": flow.request.host,
                "port": flow.request.port,
                "identity": identity,
            }

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return  # refused by RequestChecks (or earlier), or gone
        identity: Identity = flow.metadata[flowstate.IDENTITY]
        req = flow.request
        state = self.conns.get(flow.client_conn)
        path, _, query = req.path.partition("?")
        policy_input = build_input(
            identity,
            phase="request",
            scheme=req.scheme,
            host=req.host,
            port=req.port,
            method=req.method,
            path=path,
            query=query,
            headers=req.headers.items(multi=True),
            header_allowlist=self.header_allowlist,
            sni=flow.client_conn.sni,
            connect=state.connect_target,
        )
        decision = await self._decide(flow, policy_input)
        if not decision.allow:
            refuse(flow, 403, decision.reason, decision.detail)
            return
        if not await self._check_destination(flow, req.host, req.port):
            return
        state.allowed_dials.add((req.host.lower(), req.port))
        resolved = state.resolved[(req.host.lower(), req.port)]
        flow.metadata[flowstate.DIAL_ADDRESS] = (str(resolved.ip), req.port)
