"""Every manifest under deploy/ against the real Kubernetes 1.37 schemas (kubernetes-validate,
strict), and the kustomization's resource list is complete."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p for p in (REPO / "deploy").rglob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_kustomization_lists_every_manifest() -> None:
    k = yaml.safe_load((REPO / "deploy/kustomize/kustomization.yaml").read_text())
    listed = {(REPO / "deploy/kustomize" / r).resolve() for r in k["resources"]}
    assert listed == {p.resolve() for p in FILES}
