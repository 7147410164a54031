"""Who is calling the gateway: the platform credential in the API-key slot, nothing else.

Two kinds of credential, both sent as ``Authorization: Bearer <credential>`` (where OpenAI
clients put their API key):

- a Kubernetes projected service-account JWT, verified by signature against the configured
  JWKS (file or URL), issuer and audience; ``sub = system:serviceaccount:<ns>:<name>`` is
  mapped to the registered agent with that namespace and name;
- the agent's egress token from the identities file (the embedded default).

Client headers naming a user or agent, and the ``user`` field of OpenAI request bodies, are
never used for attribution.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import jwt

from egress import reasons
from egress.errors import IdentityError
from egress.identity.credentials import TOKEN_PREFIX, IdentitiesFile
from egress.identity.model import Identity


class JwtVerifier:
    def __init__(
        self,
        *,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        issuer: str,
        audience: str,
        leeway: float = 30.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._client = jwt.PyJWKClient(jwks_url) if jwks_url else None
        self._keys: dict[str, Any] = {}
        if jwks_file is not None:
            for jwk in json.loads(jwks_file.read_text())["keys"]:
                self._keys[jwk.get("kid", "")] = jwt.PyJWK(jwk).key

    def _key(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid", "")
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        if kid in self._keys:
            return self._keys[kid]
        if len(self._keys) == 1 and not kid:
            return next(iter(self._keys.values()))
        raise jwt.InvalidKeyError("unknown key id")

    def verify(self, token: str) -> tuple[str, str]:
        """(namespace, service account name) from a valid token, or IdentityError."""
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=["RS256", "ES256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, ValueError) as e:
            raise IdentityError(
                reasons.CREDENTIAL_INVALID, f"service-account token rejected: {type(e).__name__}"
            ) from e
        parts = str(claims["sub"]).split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise IdentityError(reasons.CREDENTIAL_INVALID, "not a service-account token")
        return parts[2], parts[3]


class TokenReviewVerifier:
    """Ask the Kubernetes API whether a service-account token is valid (TokenReview), for
    clusters whose signing keys are not published as JWKS."""

    def __init__(
        self,
        api_url: str,
        *,
        reviewer_token_file: Path,
        ca_file: Path | None = None,
        audience: str | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.url = api_url.rstrip("/") + "/apis/authentication.k8s.io/v1/tokenreviews"
        self.reviewer_token_file = reviewer_token_file
        self.audience = audience
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self._client = httpx.Client(verify=verify, timeout=timeout)

    def verify(self, token: str) -> tuple[str, str]:
        spec: dict[str, Any] = {"token": token}
        if self.audience:
            spec["audiences"] = [self.audience]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            resp = self._client.post(
                self.url,
                json=review,
                headers={"Authorization": f"Bearer {self.reviewer_token_file.read_text().strip()}"},
            )
            status = resp.json().get("status") or {}
        except (httpx.HTTPError, ValueError, OSError) as e:
            raise IdentityError(
                reasons.CREDENTIAL_INVALID, f"token review unavailable: {type(e).__name__}"
            ) from e
        if resp.status_code >= 300 or not status.get("authenticated"):
            raise IdentityError(reasons.CREDENTIAL_INVALID, "token review: not authenticated")
        parts = str((status.get("user") or {}).get("username", "")).split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise IdentityError(reasons.CREDENTIAL_INVALID, "not a service-account token")
        return parts[2], parts[3]


class GatewayIdentity:
    def __init__(
        self, identities: IdentitiesFile, verifier: JwtVerifier | TokenReviewVerifier | None
    ) -> None:
        self.identities = identities
        self.verifier = verifier

    def identify(self, authorization: str | None) -> Identity:
        if not authorization or not authorization.strip():
            raise IdentityError(reasons.CREDENTIAL_MISSING, "API key required")
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise IdentityError(reasons.CREDENTIAL_MALFORMED, "expected 'Bearer <credential>'")
        credential = credential.strip()
        if credential.startswith(TOKEN_PREFIX):
            return self.identities.verify_token(credential)
        if self.verifier is None:
            raise IdentityError(reasons.CREDENTIAL_INVALID, "unknown credential")
        namespace, name = self.verifier.verify(credential)
        identity = self.identities.by_service_account(namespace, name)
        if identity is None:
            raise IdentityError(
                reasons.CREDENTIAL_INVALID,
                f"service account {namespace}/{name} is not a registered agent",
            )
        return identity
