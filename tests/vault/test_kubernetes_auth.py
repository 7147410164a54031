"""Kubernetes auth: the proxy logs in to OpenBao with its service-account JWT.

OpenBao and its Kubernetes auth plugin are real; the Kubernetes API's TokenReview endpoint is a
stand-in (tests/support/k8s_tokenreview.py), because no API server can run here.
"""

from __future__ import annotations

import asyncio

import hvac
import pytest

from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.secrets.placeholders import core_of
from egress.secrets.vault import VaultSecretStore
from egress.secrets.vault_auth import KubernetesAuth, TokenAuth, VaultSession
from tests.support.k8s_tokenreview import TokenReviewServer, fake_service_account_jwt
from tests.support.openbao import start_bao
from tests.support.pki import TestCA

ALICE = Identity("alice@example.com", "triage-bot", "ns")


def test_kubernetes_login_reads_jwt_file_each_time(tmp_path) -> None:
    ca = TestCA.create(tmp_path / "k8s-ca", "k8s-test-ca")
    leaf = ca.issue("apiserver", ["localhost"], ["127.0.0.1"])
    review = TokenReviewServer(leaf.cert_path, leaf.key_path)
    bao = start_bao()
    try:
        admin = hvac.Client(bao.url, token=bao.token)
        admin.sys.enable_auth_method("kubernetes")
        admin.write(
            "auth/kubernetes/config",
            kubernetes_host=f"https://127.0.0.1:{review.port}",
            kubernetes_ca_cert=ca.cert_path.read_text(),
            token_reviewer_jwt="reviewer-token",
            disable_local_ca_jwt=True,
        )
        admin.sys.create_or_update_policy(
            "egress-proxy",
            """
path "kv/data/proxy-secrets/*" { capabilities = ["read"] }
path "kv/metadata/proxy-secrets/*" { capabilities = ["list", "read"] }
""",
        )
        admin.write(
            "auth/kubernetes/role/egress",
            bound_service_account_names=["egress-proxy"],
            bound_service_account_namespaces=["egress"],
            token_policies=["egress-proxy"],
            token_ttl="1h",
        )
        ref = VaultSecretStore(VaultSession(bao.url, TokenAuth(bao.token))).put(
            "alice@example.com", "triage-bot", "github", "k8s-auth-value-123456", ["h.example"]
        )

        jwt_file = tmp_path / "token"
        good = fake_service_account_jwt("egress", "egress-proxy")
        review.valid[good] = ("egress", "egress-proxy")
        jwt_file.write_text(good)
        session = VaultSession(bao.url, KubernetesAuth("egress", jwt_file), timeout=2.0)
        store = VaultSecretStore(session, ttl=0)
        assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) == ref
        assert session.logins == 1 and review.reviews >= 1

        # the kubelet rotates the projected token: the next login must use the new file
        rotated = fake_service_account_jwt("egress", "egress-proxy", serial=1)
        review.valid = {rotated: ("egress", "egress-proxy")}
        jwt_file.write_text(rotated)
        session.invalidate()
        assert asyncio.run(store.lookup(ALICE, core_of(ref.placeholder))) == ref
        assert session.logins == 2

        # a service account the role does not bind is refused: fail closed
        other = fake_service_account_jwt("default", "someone-else")
        review.valid = {other: ("default", "someone-else")}
        jwt_file.write_text(other)
        denied = VaultSecretStore(
            VaultSession(bao.url, KubernetesAuth("egress", jwt_file), timeout=2.0), ttl=0
        )
        with pytest.raises(SecretStoreError) as e:
            asyncio.run(denied.lookup(ALICE, core_of(ref.placeholder)))
        assert e.value.reason == "secret_unavailable"
    finally:
        bao.stop()
        review.close()
