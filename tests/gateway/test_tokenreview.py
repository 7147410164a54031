"""TokenReview identity for the gateway. The Kubernetes API is a stand-in HTTPS server
(tests/support/k8s_tokenreview.py): no API server can run here. The verifier and the gateway's
use of it are the real code."""

from __future__ import annotations

import pytest

from egress.errors import IdentityError
from egress.gateway.identity import GatewayIdentity, TokenReviewVerifier
from egress.identity.credentials import IdentitiesFile
from tests.support.k8s_tokenreview import TokenReviewServer, fake_service_account_jwt
from tests.support.pki import TestCA


def test_tokenreview_maps_service_account_to_agent(tmp_path) -> None:
    ca = TestCA.create(tmp_path / "ca", "k8s-ca")
    leaf = ca.issue("apiserver", ["localhost"], ["127.0.0.1"])
    api = TokenReviewServer(leaf.cert_path, leaf.key_path)
    try:
        ids = IdentitiesFile(tmp_path / "ids.json")
        identity, _ = ids.add("alice@example.com", "triage-bot", namespace="agents-alice")
        reviewer = tmp_path / "reviewer"
        reviewer.write_text("gateway-token")
        verifier = TokenReviewVerifier(
            f"https://127.0.0.1:{api.port}",
            reviewer_token_file=reviewer,
            ca_file=ca.cert_path,
            audience="egress-gateway",
        )
        gw = GatewayIdentity(ids, verifier)
        good = fake_service_account_jwt("agents-alice", "triage-bot")
        api.valid[good] = ("agents-alice", "triage-bot")
        assert gw.identify(f"Bearer {good}") == identity
        stranger = fake_service_account_jwt("agents-alice", "other-bot", serial=1)
        api.valid[stranger] = ("agents-alice", "other-bot")
        with pytest.raises(IdentityError):
            gw.identify(f"Bearer {stranger}")  # valid token, but not a registered agent
        with pytest.raises(IdentityError):
            gw.identify("Bearer " + fake_service_account_jwt("x", "y", serial=2))  # rejected
    finally:
        api.close()


def test_tokenreview_unreachable_fails_closed(tmp_path) -> None:
    reviewer = tmp_path / "reviewer"
    reviewer.write_text("t")
    verifier = TokenReviewVerifier("https://127.0.0.1:9", reviewer_token_file=reviewer)
    with pytest.raises(IdentityError) as e:
        verifier.verify("anything")
    assert e.value.reason == "credential_invalid"
