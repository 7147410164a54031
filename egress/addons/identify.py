"""Identify: who is calling, from the proxy credential only.

CONNECT and plain-HTTP requests must carry ``Proxy-Authorization: Basic base64(agent:token)``;
requests inside a tunnel inherit the identity proved on its CONNECT. Whatever the agent says
about itself elsewhere (identity headers, a second Proxy-Authorization inside the tunnel) is
ignored and stripped before anything goes upstream. Failure -> 407 with a reason code.
"""

from __future__ import annotations

from mitmproxy import http

from egress import flowstate, replies
from egress.audit import new_decision_id
from egress.credentials import IdentitiesFile, parse_proxy_authorization
from egress.errors import IdentityError
from egress.flowstate import ConnRegistry
from egress.identity import Identity

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

    def _authenticate(self, flow: http.HTTPFlow) -> Identity | None:
        try:
            username, token = parse_proxy_authorization(
                flow.request.headers.get("proxy-authorization")
            )
            return self.identities.verify(username, token)
        except IdentityError as e:
            decision_id = new_decision_id()
            flow.metadata[flowstate.DECISION_ID] = decision_id
            flow.metadata[flowstate.DENIED] = e.reason
            flow.response = replies.refusal(407, e.reason, decision_id)
            return None

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        identity = self._authenticate(flow)
        if identity is None:
            return
        flow.metadata[flowstate.IDENTITY] = identity
        state = self.conns.get(flow.client_conn)
        state.identity = identity
        state.connect_target = (flow.request.host, flow.request.port)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        state = self.conns.peek(flow.client_conn)
        if state is not None and state.connect_target is not None and state.identity:
            identity: Identity | None = state.identity
        else:
            identity = self._authenticate(flow)
        strip_identity_claims(flow.request.headers)
        if identity is not None:
            flow.metadata[flowstate.IDENTITY] = identity
