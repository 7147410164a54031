"""A real kube-apiserver (tests/support/kube.py) shared by the operator tests, with the Agent
CRD from deploy/crd applied and the platform namespace created."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from egress.operator.cluster import KubeCluster
from tests.support.kube import KubeServer, start_kube

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeServer]:
    server = start_kube()
    try:
        cluster = KubeCluster(str(server.kubeconfig))
        cluster.apply(yaml.safe_load((REPO / "deploy/crd/agent.yaml").read_text()))
        cluster.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "egress-system"}}
        )
        with server.client() as c:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if c.get("/apis/egress.dev/v1alpha1/agents").status_code == 200:
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError("Agent CRD never served")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(kube: KubeServer) -> KubeCluster:
    return KubeCluster(str(kube.kubeconfig))
