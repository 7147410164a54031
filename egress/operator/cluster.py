"""``KubeCluster``: the ``Cluster`` interface on the real Kubernetes API (server-side apply)."""

from __future__ import annotations

from typing import Any

from egress.kube.agents import API_VERSION, KIND

FIELD_MANAGER = "egress-operator"


class KubeCluster:
    def __init__(self, kubeconfig: str | None = None) -> None:
        """In-cluster service account first, else ``kubeconfig`` (default: $KUBECONFIG or
        ~/.kube/config). An explicit ``kubeconfig`` skips the in-cluster attempt."""
        from kubernetes import client, dynamic
        from kubernetes import config as kube_config

        # the kubernetes client ships no type hints: its loaders are used through Any
        config: Any = kube_config
        make_client: Any = dynamic.DynamicClient

        configuration = client.Configuration()
        if kubeconfig is not None:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
        self.client = make_client(client.ApiClient(configuration))

    def _api(self, api_version: str, kind: str) -> Any:
        return self.client.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self._api(obj["apiVersion"], obj["kind"]).server_side_apply(
            body=obj,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found: dict[str, Any] = (
                self._api(api_version, kind).get(name=name, namespace=namespace).to_dict()
            )
            return found
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._api(api_version, kind).delete(name=name, namespace=namespace)
        except ApiException as e:
            if e.status != 404:
                raise

    def list_agents(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self._api(API_VERSION, KIND).get().items]

    def patch_agent(self, name: str, patch: dict[str, Any]) -> None:
        api = self._api(API_VERSION, KIND)
        status = patch.pop("status", None)
        if patch:
            api.patch(name=name, body=patch, content_type="application/merge-patch+json")
        if status:
            api.status.patch(
                name=name, body={"status": status}, content_type="application/merge-patch+json"
            )
