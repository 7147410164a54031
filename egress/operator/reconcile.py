"""What the operator does, independent of kopf: reconcile one Agent, keep the platform-side
policy data and identities in step, stop idle agents.

All cluster access goes through a small ``Cluster`` interface (apply, get, delete, list
agents, patch an agent), so the same logic runs against the real API (``KubeCluster``) and
in tests.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any, Protocol

from egress.identity.credentials import hash_token, new_token
from egress.kube.agents import SPEC_STOPPED
from egress.operator.render import (
    AgentSpec,
    Platform,
    render_agent,
    render_platform_state,
)


class Cluster(Protocol):
    def apply(self, obj: dict[str, Any]) -> None: ...

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None: ...

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None: ...

    def list_agents(self) -> list[dict[str, Any]]: ...

    def patch_agent(self, name: str, patch: dict[str, Any]) -> None: ...


class Reconciler:
    def __init__(
        self,
        cluster: Cluster,
        platform: Platform,
        last_activity: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.cluster = cluster
        self.platform = platform
        self.last_activity = last_activity or (lambda: {})

    def _token(self, spec: AgentSpec) -> tuple[str, str]:
        """The agent's proxy token: kept across reconciles, minted once."""
        secret = self.cluster.get("v1", "Secret", spec.namespace, "egress-proxy-credential")
        token = None
        if secret is not None:
            token = (secret.get("stringData") or {}).get("token")
            if token is None and "data" in secret:
                import base64

                token = base64.b64decode(secret["data"]["token"]).decode()
        token = token or new_token()
        return token, hash_token(token)

    def reconcile(self, resource_spec: dict[str, Any]) -> dict[str, Any]:
        """Apply everything one Agent needs; returns the status to record."""
        spec = AgentSpec.from_resource(resource_spec)
        token, token_hash = self._token(spec)
        for obj in render_agent(spec, self.platform, token=token):
            self.cluster.apply(obj)
        self.sync_platform()
        phase = "Killed" if spec.kill_switch else "Stopped" if spec.stopped else "Running"
        return {
            "namespace": spec.namespace,
            "phase": phase,
            "tokenHash": token_hash,
            "message": f"{len(render_agent(spec, self.platform))} objects applied",
        }

    def sync_platform(self) -> None:
        """Policy data and identities for every Agent (what the proxy loads)."""
        specs, hashes = [], {}
        for res in self.cluster.list_agents():
            if (res.get("metadata") or {}).get("deletionTimestamp"):
                # being deleted (kopf's finalizer holds it until our delete handler ran):
                # it must already be gone from the proxy's rules and identities
                continue
            try:
                s = AgentSpec.from_resource(res["spec"])
            except (KeyError, ValueError):
                continue  # an invalid Agent gets no rules and no identity
            specs.append(s)
            h = (res.get("status") or {}).get("tokenHash")
            if h:
                hashes[s.key] = h
            else:
                hashes[s.key] = self._token(s)[1]
        for obj in render_platform_state(specs, hashes, self.platform):
            self.cluster.apply(obj)

    def delete(self, resource_spec: dict[str, Any]) -> None:
        spec = AgentSpec.from_resource(resource_spec)
        self.cluster.delete("v1", "Namespace", None, spec.namespace)
        self.sync_platform()

    def reap_idle(self, name: str, resource_spec: dict[str, Any], now: float | None = None) -> bool:
        """Stop an agent whose last egress is older than its idle timeout. Compute only:
        namespace, PVC, RBAC and secrets stay; ``stopped: false`` resumes it."""
        spec = AgentSpec.from_resource(resource_spec)
        if not spec.running or spec.idle_timeout_minutes <= 0:
            return False
        last = self.last_activity().get(spec.key)
        if last is None:
            return False
        now = time.time() if now is None else now
        if now - last < spec.idle_timeout_minutes * 60:
            return False
        self.cluster.patch_agent(
            name,
            {
                "spec": {SPEC_STOPPED: True},
                "status": {
                    "phase": "Stopped",
                    "message": "stopped after "
                    f"{spec.idle_timeout_minutes} min idle (last egress "
                    f"{datetime.datetime.fromtimestamp(last, datetime.UTC).isoformat()})",
                },
            },
        )
        return True
