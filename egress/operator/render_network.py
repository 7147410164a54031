"""Where an agent may connect: its NetworkPolicy (default deny; DNS, proxy, gateway, Vault)."""

from __future__ import annotations

from typing import Any

from egress.operator.spec import AgentSpec, Platform, object_meta


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
        "metadata": object_meta(spec, "egress-only-through-the-platform", spec.namespace),
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
