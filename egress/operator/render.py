"""Pure render functions: an Agent's spec (+ platform settings) to Kubernetes objects.

Nothing here talks to a cluster, so every name, label and policy document is table-tested.
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


def _meta(spec: AgentSpec, name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": labels(spec),
        "annotations": {ANNOTATION_OWNER: spec.owner},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def proxy_url_env(spec: AgentSpec, platform: Platform) -> list[dict[str, Any]]:
    """HTTPS_PROXY/HTTP_PROXY built from the token Secret (Kubernetes expands $(VAR))."""
    url = f"http://{spec.agent}:$(EGRESS_PROXY_TOKEN)@{platform.proxy_host}:{platform.proxy_port}"
    ca = f"{CA_MOUNT}/{CA_KEY}"
    return [
        {
            "name": "EGRESS_PROXY_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "egress-proxy-credential", "key": "token"}},
        },
        {"name": "HTTPS_PROXY", "value": url},
        {"name": "HTTP_PROXY", "value": url},
        {"name": "NO_PROXY", "value": ",".join(platform.no_proxy)},
        {"name": "SSL_CERT_FILE", "value": ca},
        {"name": "REQUESTS_CA_BUNDLE", "value": ca},
        {"name": "NODE_EXTRA_CA_CERTS", "value": ca},
        {
            "name": "OPENAI_BASE_URL",
            "value": f"http://{platform.gateway_host}:{platform.gateway_port}/openai/v1",
        },
    ]


_PSS_MODES = ("enforce", "warn", "audit")


def render_agent(spec: AgentSpec, platform: Platform, token: str | None = None) -> list[dict]:
    """Every namespaced object of one agent, in apply order."""
    ns = spec.namespace
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                **_meta(spec, ns),
                # enforce refuses pods; warn and audit also flag workload templates
                "labels": {
                    **labels(spec),
                    **{f"pod-security.kubernetes.io/{m}": "restricted" for m in _PSS_MODES},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(spec, "agent", ns),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(spec, "owner-admin", ns),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            # the raw identity, exactly as the cluster's authenticator reports the user
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": spec.owner}
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(spec, "data", ns),
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": spec.storage}},
                **({"storageClassName": platform.storage_class} if platform.storage_class else {}),
            },
        },
        render_network_policy(spec, platform),
        render_workload(spec, platform),
    ]
    if token is not None:
        objs.insert(
            2,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta(spec, "egress-proxy-credential", ns),
                "type": "Opaque",
                "stringData": {"token": token},
            },
        )
    if spec.ui_port:
        objs.extend(render_ui(spec, platform))
    return objs


def render_network_policy(spec: AgentSpec, platform: Platform) -> dict[str, Any]:
    """Default deny; egress only to DNS, the proxy, the gateway and Vault; no ingress except
    the UI port from the ingress controller's namespace."""

    def to_ns(namespace: str, port: int) -> dict[str, Any]:
        return {
            "to": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
            ],
            "ports": [{"protocol": "TCP", "port": port}],
        }

    ingress: list[dict[str, Any]] = []
    if spec.ui_port:
        ingress.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {
                                "kubernetes.io/metadata.name": platform.system_namespace
                            }
                        }
                    }
                ],
                "ports": [{"protocol": "TCP", "port": spec.ui_port}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, "egress-only-through-the-platform", spec.namespace),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                            },
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                to_ns(platform.system_namespace, platform.proxy_port),
                to_ns(platform.system_namespace, platform.gateway_port),
                to_ns(platform.vault_namespace, platform.vault_port),
            ],
        },
    }


def render_workload(spec: AgentSpec, platform: Platform) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "agent",
        "image": spec.image,
        "env": proxy_url_env(spec, platform),
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "platform-ca", "mountPath": CA_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (an emptyDir: read-only root needs a writable /tmp)
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.resources:
        container["resources"] = spec.resources
    if spec.ui_port:
        container["ports"] = [{"name": "ui", "containerPort": spec.ui_port}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(spec, "agent", spec.namespace),
        "spec": {
            "replicas": 1 if spec.running else 0,
            "strategy": {"type": "Recreate"},  # one writer of the ReadWriteOnce /data volume
            "selector": {"matchLabels": {LABEL_AGENT: spec.agent}},
            "template": {
                "metadata": {"labels": labels(spec)},
                "spec": {
                    "serviceAccountName": "agent",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "platform-ca", "configMap": {"name": platform.ca_configmap}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def render_ui(spec: AgentSpec, platform: Platform) -> list[dict[str, Any]]:
    """A Service and a Traefik IngressRoute behind OAuth2-Proxy forward auth; the
    `allowed_emails` middleware admits only the raw owner."""
    assert spec.ui_port
    host = f"{dns_label(spec.agent + '-' + spec.owner)}.{platform.ingress_domain}"
    ns = spec.namespace
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, "ui", ns),
            "spec": {
                "selector": {LABEL_AGENT: spec.agent},
                "ports": [{"name": "ui", "port": 80, "targetPort": spec.ui_port}],
            },
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": _meta(spec, "owner-only", ns),
            "spec": {
                "forwardAuth": {
                    "address": "http://oauth2-proxy.egress-system.svc.cluster.local/oauth2/auth"
                    f"?allowed_emails={spec.owner}",
                    "trustForwardHeader": False,
                    "authResponseHeaders": ["X-Auth-Request-Email"],
                }
            },
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "IngressRoute",
            "metadata": _meta(spec, "ui", ns),
            "spec": {
                "entryPoints": ["websecure"],
                "routes": [
                    {
                        "match": f"Host(`{host}`)",
                        "kind": "Rule",
                        "middlewares": [{"name": "owner-only"}],
                        "services": [{"name": "ui", "port": 80}],
                    }
                ],
                "tls": {},
            },
        },
    ]


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
    import json

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
