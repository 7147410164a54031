"""Every manifest under deploy/ against the real Kubernetes 1.37 schemas (kubernetes-validate,
strict); the platform kustomization built by real kustomize (bin/kustomize from Go modules, and
`kubectl kustomize` where kubectl is installed) yields exactly those objects, all valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.process import required_binary

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in (REPO / "deploy").rglob("*.yaml") if p.name != "kustomization.yaml")
PLATFORM = REPO / "deploy" / "kustomize"


def _kustomize() -> Path:
    return required_binary("KUSTOMIZE", "bin/kustomize", "kustomize")


def _identity(doc: dict) -> tuple[str, str, str]:
    return doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"]


def _built_objects(cmd: list[str]) -> list[dict]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_kustomize_build_yields_every_manifest_and_only_valid_objects() -> None:
    """A real `kustomize build` (it refuses files outside the kustomization root, which a
    schema check alone never notices) must carry every object of every manifest, namespaced
    into egress-system where the kind is namespaced, each valid against the 1.37 schemas."""
    built = _built_objects([str(_kustomize()), "build", str(PLATFORM)])
    expected = {
        (d["kind"], d["metadata"]["name"])
        for p in FILES
        for d in yaml.safe_load_all(p.read_text())
        if d
    }
    assert {(d["kind"], d["metadata"]["name"]) for d in built} == expected
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in built:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
        ns = doc["metadata"].get("namespace")
        assert ns == (None if doc["kind"] in cluster_scoped else "egress-system"), _identity(doc)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_agrees_with_kustomize() -> None:
    """`kubectl kustomize` (the engine users run) builds the same objects offline."""
    via_kubectl = _built_objects(["kubectl", "kustomize", str(PLATFORM)])
    via_kustomize = _built_objects([str(_kustomize()), "build", str(PLATFORM)])
    assert sorted(map(_identity, via_kubectl)) == sorted(map(_identity, via_kustomize))
    assert via_kubectl == via_kustomize
