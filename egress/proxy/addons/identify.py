"""Identify: who is calling, from the proxy credential only.

CONNECT and plain-HTTP requests must carry ``Proxy-Authorization: Basic base64(agent:token)``;
requests inside a tunnel inherit the identity proved on its CONNECT. Whatever the agent says
about itself elsewhere (identity headers, a second Proxy-Authorization inside the tunnel) is
ignored and stripped before anything goes upstream. Failure -> 407 with a reason code.

Identity is per request, not per connection: the connection keeps the hash of the credential
it proved, and each request on it re-checks that hash whenever the identities revision moved
(``egress agents revoke``). A revoked credential gets 407 ``credential_revoked`` and the
connection is closed; the Sessions addon closes the idle ones.
"""

from __future__ import annotations

from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.errors import IdentityError
from egress.identity.credentials import IdentitiesFile, hash_token, parse_proxy_authorization
from egress.identity.model import Identity
from egress.proxy import flowstate, replies
from egress.proxy.flowstate import ConnRegistry, ConnState

# Headers through which a client could claim to be someone. Never trusted, never forwarded.
IDENTITY_CLAIM_HEADERS = frozenset(
    {
        "proxy-authorization",
        "proxy-connection",
        "x-agent",
        "x-agent-id",
        "x-agent-name",
        "x-agent-user",
        "x-user",
        "x-user-id",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-remote-user",
        "x-auth-request-user",
        "x-auth-request-email",
        "remote-user",
        "x-identity",
        "x-on-behalf-of",
        "x-impersonate-user",
    }
)


def strip_identity_claims(headers: http.Headers) -> None:
    for name in list(headers.keys()):
        lname = name.lower()
        if lname in IDENTITY_CLAIM_HEADERS or lname.startswith(replies.OWN_HEADER_PREFIX):
            del headers[name]


class Identify:
    def __init__(self, identities: IdentitiesFile, conns: ConnRegistry) -> None:
        self.identities = identities
        self.conns = conns

    def _authenticate(
        self, flow: http.HTTPFlow, state: ConnState | None = None
    ) -> tuple[Identity, tuple[str, str]] | None:
        """The identity and (agent name, token hash) the request's credential proves."""
        credential: tuple[str, str] | None = None
        try:
            username, token = parse_proxy_authorization(
                flow.request.headers.get("proxy-authorization")
            )
            credential = (username, hash_token(token))
            revision = self.identities.refresh()
            identity = self.identities.verify(username, token)
        except IdentityError as e:
            reason = e.reason
            if state is not None and credential is not None and state.credential == credential:
                reason = reasons.CREDENTIAL_REVOKED  # this connection proved it before
                state.revoked = True
            self._refuse(flow, reason)
            return None
        if state is not None:
            state.identity_revision = revision
        return identity, credential

    @staticmethod
    def _refuse(flow: http.HTTPFlow, reason: str) -> None:
        decision_id = new_decision_id()
        flow.metadata[flowstate.DECISION_ID] = decision_id
        flow.metadata[flowstate.DENIED] = reason
        flow.response = replies.refusal(407, reason, decision_id)
        if reason == reasons.CREDENTIAL_REVOKED and flow.request.http_version.startswith("HTTP/1"):
            # HTTP/1 closes after this answer (HTTP/2 forbids the header: the Sessions addon
            # closes those connections on its next sweep)
            flow.response.headers["Connection"] = "close"

    def _still_valid(self, state: ConnState) -> bool:
        """Re-check the connection's credential, only when the identities changed."""
        revision = self.identities.refresh()
        if state.revoked:
            return False
        if state.identity_revision == revision or state.credential is None:
            return True
        identity = self.identities.still_valid(*state.credential)
        if identity is None or identity != state.identity:
            state.revoked = True
            return False
        state.identity_revision = revision
        return True

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = self.conns.get(flow.client_conn)
        proved = self._authenticate(flow, state)
        if proved is None:
            return
        identity, state.credential = proved
        flow.metadata[flowstate.IDENTITY] = identity
        state.identity = identity
        state.connect_target = (flow.request.host, flow.request.port)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = self.conns.get(flow.client_conn)
        identity: Identity | None = None
        if state.connect_target is not None and state.identity:
            if self._still_valid(state):
                identity = state.identity
            else:
                self._refuse(flow, reasons.CREDENTIAL_REVOKED)
                # the event names who was refused: the identity this connection had proved
                flow.metadata[flowstate.IDENTITY] = state.identity
        else:
            proved = self._authenticate(flow, state)
            if proved is not None:
                identity, state.credential = proved
                state.identity, state.revoked = identity, False
        strip_identity_claims(flow.request.headers)
        if identity is not None:
            flow.metadata[flowstate.IDENTITY] = identity
