"""What runs: the agent's Deployment (hardened pod, proxy environment, platform CA) and, when
the Agent asks for a UI, its Service and owner-only IngressRoute."""

from __future__ import annotations

from typing import Any

from egress.identity.model import dns_label
from egress.operator.spec import (
    CA_KEY,
    CA_MOUNT,
    LABEL_AGENT,
    AgentSpec,
    Platform,
    labels,
    object_meta,
)


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
        "metadata": object_meta(spec, "agent", spec.namespace),
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
            "metadata": object_meta(spec, "ui", ns),
            "spec": {
                "selector": {LABEL_AGENT: spec.agent},
                "ports": [{"name": "ui", "port": 80, "targetPort": spec.ui_port}],
            },
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": object_meta(spec, "owner-only", ns),
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
            "metadata": object_meta(spec, "ui", ns),
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
