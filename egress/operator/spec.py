"""The operator's model of one Agent: ``AgentSpec`` (read from the resource's spec),
``Platform`` (cluster-wide settings) and the labels and metadata every rendered object carries.

Identity: the raw owner (``alice@example.com``) is the RBAC subject and an annotation; sanitized
forms (``dns_label``) appear only where Kubernetes names and labels demand them, with a short
hash so two owners that sanitize alike never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from egress.identity.model import default_namespace, dns_label, validate_agent_name, validate_user
from egress.kube.agents import (
    GROUP,
    SPEC_AGENT,
    SPEC_IDLE_TIMEOUT,
    SPEC_KILL_SWITCH,
    SPEC_OWNER,
    SPEC_STOPPED,
)

LABEL_AGENT = f"{GROUP}/agent"
LABEL_OWNER = f"{GROUP}/owner"
ANNOTATION_OWNER = f"{GROUP}/owner-identity"
MANAGED = {"app.kubernetes.io/managed-by": "egress-operator"}
CA_KEY = "ca.crt"
CA_MOUNT = "/etc/egress/ca"


@dataclass(frozen=True)
class Platform:
    proxy_host: str = "egress-proxy.egress-system.svc.cluster.local"
    proxy_port: int = 8080
    system_namespace: str = "egress-system"
    gateway_host: str = "egress-gateway.egress-system.svc.cluster.local"
    gateway_port: int = 4000
    vault_namespace: str = "vault"
    vault_port: int = 8200
    ca_configmap: str = "egress-platform-ca"
    ingress_domain: str = "agents.example.com"
    forward_auth_middleware: str = "egress-system-oauth2-proxy@kubernetescrd"
    storage_class: str | None = None
    no_proxy: tuple[str, ...] = ("localhost", "127.0.0.1", ".svc", ".cluster.local")


@dataclass(frozen=True)
class AgentSpec:
    owner: str
    agent: str
    image: str
    command: tuple[str, ...] = ()
    resources: dict[str, Any] = field(default_factory=dict)
    storage: str = "1Gi"
    rules: tuple[dict[str, Any], ...] = ()
    idle_timeout_minutes: int = 60
    kill_switch: bool = False
    stopped: bool = False
    ui_port: int | None = None

    @classmethod
    def from_resource(cls, spec: dict[str, Any]) -> AgentSpec:
        validate_user(spec[SPEC_OWNER])
        validate_agent_name(spec[SPEC_AGENT])
        return cls(
            owner=spec[SPEC_OWNER],
            agent=spec[SPEC_AGENT],
            image=spec["image"],
            command=tuple(spec.get("command") or ()),
            resources=dict(spec.get("resources") or {}),
            storage=spec.get("storage") or "1Gi",
            rules=tuple((spec.get("egress") or {}).get("rules") or ()),
            idle_timeout_minutes=int(spec.get(SPEC_IDLE_TIMEOUT, 60)),
            kill_switch=bool(spec.get(SPEC_KILL_SWITCH, False)),
            stopped=bool(spec.get(SPEC_STOPPED, False)),
            ui_port=(spec.get("ui") or {}).get("port"),
        )

    @property
    def namespace(self) -> str:
        return default_namespace(self.owner, self.agent)

    @property
    def key(self) -> str:
        return f"{self.owner}/{self.agent}"

    @property
    def running(self) -> bool:
        return not (self.kill_switch or self.stopped)


def labels(spec: AgentSpec) -> dict[str, str]:
    return {**MANAGED, LABEL_AGENT: spec.agent, LABEL_OWNER: dns_label(spec.owner)}


def object_meta(spec: AgentSpec, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": labels(spec),
        "annotations": {ANNOTATION_OWNER: spec.owner},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta
