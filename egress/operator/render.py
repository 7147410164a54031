"""Pure render functions: an Agent's spec (+ platform settings) to Kubernetes objects.

Nothing here talks to a cluster, so every name, label and policy document is table-tested.
This module assembles one agent's objects in apply order (namespace, account, RBAC, storage
here; network in ``render_network``, workload and UI in ``render_workload``) and re-exports
the model (``spec``) and the platform-side state (``render_platform``) for callers.
"""

from __future__ import annotations

from typing import Any

from egress.operator.render_network import render_network_policy
from egress.operator.render_platform import render_platform_state, render_policy_data
from egress.operator.render_workload import proxy_url_env, render_ui, render_workload
from egress.operator.spec import (
    ANNOTATION_OWNER,
    CA_KEY,
    CA_MOUNT,
    LABEL_AGENT,
    LABEL_OWNER,
    MANAGED,
    AgentSpec,
    Platform,
    labels,
    object_meta,
)

__all__ = [
    "ANNOTATION_OWNER",
    "CA_KEY",
    "CA_MOUNT",
    "LABEL_AGENT",
    "LABEL_OWNER",
    "MANAGED",
    "AgentSpec",
    "Platform",
    "labels",
    "proxy_url_env",
    "render_agent",
    "render_namespace",
    "render_network_policy",
    "render_owner_binding",
    "render_platform_state",
    "render_policy_data",
    "render_ui",
    "render_workload",
]

_PSS_MODES = ("enforce", "warn", "audit")


def render_namespace(spec: AgentSpec) -> dict[str, Any]:
    """The agent's own namespace, Pod Security ``restricted`` in every mode."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            **object_meta(spec, spec.namespace),
            # enforce refuses pods; warn and audit also flag workload templates
            "labels": {
                **labels(spec),
                **{f"pod-security.kubernetes.io/{m}": "restricted" for m in _PSS_MODES},
            },
        },
    }


def render_owner_binding(spec: AgentSpec) -> dict[str, Any]:
    """The owner may ``edit`` in the agent's namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": object_meta(spec, "owner-admin", spec.namespace),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "edit",
        },
        # the raw identity, exactly as the cluster's authenticator reports the user
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": spec.owner}],
    }


def render_agent(
    spec: AgentSpec, platform: Platform, token: str | None = None
) -> list[dict[str, Any]]:
    """Every namespaced object of one agent, in apply order."""
    ns = spec.namespace
    objs: list[dict[str, Any]] = [
        render_namespace(spec),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_meta(spec, "agent", ns),
            "automountServiceAccountToken": False,
        },
        render_owner_binding(spec),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": object_meta(spec, "data", ns),
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
                "metadata": object_meta(spec, "egress-proxy-credential", ns),
                "type": "Opaque",
                "stringData": {"token": token},
            },
        )
    if spec.ui_port:
        objs.extend(render_ui(spec, platform))
    return objs
