"""deploy/vault/setup.sh run with the real OpenBao CLI against a real OpenBao server, then the
rights it grants tried for real: the proxy's service account logs in and reads an agent's
secret; the same token cannot write, cannot read kv/agents/*, cannot read policies; another
service account cannot take the proxy's role. The roles bind the service accounts and namespace
the kustomize manifests actually create.

The Kubernetes TokenReview endpoint is a stand-in (tests/support/k8s_tokenreview.py): no API
server runs here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import hvac
import hvac.exceptions
import pytest
import yaml

from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.secrets.placeholders import core_of
from egress.secrets.vault import VaultSecretStore
from egress.secrets.vault_auth import KubernetesAuth, TokenAuth, VaultSession
from tests.support.k8s_tokenreview import TokenReviewServer, fake_service_account_jwt
from tests.support.openbao import BaoServer, start_bao
from tests.support.pki import TestCA

REPO = Path(__file__).resolve().parents[2]
ALICE = Identity("alice@example.com", "triage-bot", "ns")


def _run_setup(bao: BaoServer, review_port: int, ca_cert: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_"))}
    env.update(
        VAULT_CLI=str(bao.binary),
        BAO_ADDR=bao.url,
        BAO_TOKEN=bao.token,
        KUBERNETES_HOST=f"https://127.0.0.1:{review_port}",
        KUBERNETES_CA_CERT=str(ca_cert),
        TOKEN_REVIEWER_JWT="reviewer-token",
    )
    return subprocess.run(
        ["bash", str(REPO / "deploy/vault/setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _service_accounts_in_manifests() -> dict[str, str]:
    """name -> namespace of every ServiceAccount the platform kustomization declares."""
    k = yaml.safe_load((REPO / "deploy/kustomize/kustomization.yaml").read_text())
    out: dict[str, str] = {}
    for resource in k["resources"]:
        path = REPO / "deploy/kustomize" / resource
        if path.is_dir():
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ServiceAccount":
                out[doc["metadata"]["name"]] = k["namespace"]
    return out


@pytest.fixture
def configured(tmp_path):
    ca = TestCA.create(tmp_path / "k8s-ca", "k8s-test-ca")
    leaf = ca.issue("apiserver", ["localhost"], ["127.0.0.1"])
    review = TokenReviewServer(leaf.cert_path, leaf.key_path)
    bao = start_bao()
    try:
        # the dev server already has kv/ (start_bao): run twice to prove idempotence
        for _ in range(2):
            done = _run_setup(bao, review.port, ca.cert_path)
            assert done.returncode == 0, done.stderr
        yield bao, review, tmp_path
    finally:
        bao.stop()
        review.close()


def _login(bao: BaoServer, review: TokenReviewServer, tmp: Path, role: str, ns: str, sa: str):
    jwt = fake_service_account_jwt(ns, sa)
    review.valid[jwt] = (ns, sa)
    jwt_file = tmp / f"{sa}.jwt"
    jwt_file.write_text(jwt)
    return VaultSession(bao.url, KubernetesAuth(role, jwt_file), timeout=2.0)


def test_roles_bind_the_service_accounts_the_manifests_create(configured) -> None:
    bao, _, _ = configured
    admin = hvac.Client(bao.url, token=bao.token)
    accounts = _service_accounts_in_manifests()
    for role in ("egress-proxy", "egress-gateway"):
        data = admin.read(f"auth/kubernetes/role/{role}")["data"]
        (sa,) = data["bound_service_account_names"]
        (ns,) = data["bound_service_account_namespaces"]
        assert accounts.get(sa) == ns, f"role {role} binds {ns}/{sa}, not in deploy/kustomize"
        assert data["token_policies"] == [role]
    policies = admin.sys.list_policies()["data"]["policies"]
    assert {"egress-proxy", "egress-gateway", "egress-secrets-admin"} <= set(policies)


def test_proxy_role_reads_secrets_and_nothing_else(configured) -> None:
    bao, review, tmp = configured
    admin = hvac.Client(bao.url, token=bao.token)
    ref = VaultSecretStore(VaultSession(bao.url, TokenAuth(bao.token))).put(
        "alice@example.com", "triage-bot", "github", "setup-sh-value-123456", ["h.example"]
    )
    admin.secrets.kv.v2.create_or_update_secret(
        path="agents/alice@example.com/triage-bot/notes", secret={"v": "1"}, mount_point="kv"
    )

    session = _login(bao, review, tmp, "egress-proxy", "egress-system", "egress-proxy")
    store = VaultSecretStore(session, ttl=0)
    assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) == ref
    assert session.logins == 1

    token = session.ensure().token
    proxy = hvac.Client(bao.url, token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        proxy.secrets.kv.v2.create_or_update_secret(
            path="proxy-secrets/alice@example.com/triage-bot/github",
            secret={"value": "attacker"},
            mount_point="kv",
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        proxy.secrets.kv.v2.read_secret_version(
            path="agents/alice@example.com/triage-bot/notes",
            mount_point="kv",
            raise_on_deleted_version=True,
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        proxy.sys.read_policy("egress-proxy")
    # the secret is unchanged after the refused write
    assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))).name == "github"

    # the gateway's own role reads the same tree with its own service account
    gateway = _login(bao, review, tmp, "egress-gateway", "egress-system", "egress-gateway")
    assert (
        asyncio.run(VaultSecretStore(gateway, ttl=0).lookup(ALICE, core_of(ref.placeholder))) == ref
    )


def test_other_service_accounts_cannot_take_the_proxy_role(configured) -> None:
    bao, review, tmp = configured
    VaultSecretStore(VaultSession(bao.url, TokenAuth(bao.token))).put(
        "alice@example.com", "triage-bot", "github", "setup-sh-value-654321", ["h.example"]
    )
    for ns, sa in [("egress-system", "egress-gateway"), ("agent-ns", "egress-proxy")]:
        session = _login(bao, review, tmp, "egress-proxy", ns, sa)
        store = VaultSecretStore(session, ttl=0)
        with pytest.raises(SecretStoreError) as e:
            asyncio.run(store.lookup(ALICE, "anything"))
        assert e.value.reason == "secret_unavailable"
