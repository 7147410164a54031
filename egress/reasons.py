"""Reason codes: the one vocabulary shared by 4xx bodies, decision events and the policy.

Codes produced by the Rego policy are listed here too, so that every code an agent or an
auditor can meet is documented in one place (the README table is generated from ``DESCRIPTIONS``).
"""

from __future__ import annotations

# -- policy (returned by data.egress.decision.reason) -------------------------------------
ALLOWED = "allowed"
AGENT_KILLED = "agent_killed"
AGENT_UNKNOWN = "agent_unknown"
HOST_NOT_ALLOWED = "host_not_allowed"
SCHEME_NOT_ALLOWED = "scheme_not_allowed"
METHOD_NOT_ALLOWED = "method_not_allowed"
PATH_NOT_ALLOWED = "path_not_allowed"
DEFAULT_DENY = "default_deny"

# -- identity (HTTP 407) -------------------------------------------------------------------
CREDENTIAL_MISSING = "credential_missing"
CREDENTIAL_MALFORMED = "credential_malformed"
CREDENTIAL_INVALID = "credential_invalid"

# -- where the request really goes ----------------------------------------------------------
DESTINATION_MISMATCH = "destination_mismatch"
PATH_AMBIGUOUS = "path_ambiguous"
DIAL_NOT_AUTHORIZED = "dial_not_authorized"

# -- policy engine failures (fail closed) ---------------------------------------------------
POLICY_ERROR = "policy_error"
POLICY_TIMEOUT = "policy_timeout"
POLICY_UNDEFINED = "policy_undefined"
POLICY_MALFORMED = "policy_malformed"

# -- secrets ------------------------------------------------------------------------------
PLACEHOLDER_UNKNOWN = "placeholder_unknown"
SECRET_NOT_ALLOWED = "secret_not_allowed"  # noqa: S105
SECRET_HOST_NOT_BOUND = "secret_host_not_bound"  # noqa: S105
SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105

# -- upstream -----------------------------------------------------------------------------
UPSTREAM_TLS_FAILED = "upstream_tls_failed"
UPSTREAM_CONNECT_FAILED = "upstream_connect_failed"
UPSTREAM_ERROR = "upstream_error"
CLIENT_ABORTED = "client_aborted"

DESCRIPTIONS: dict[str, str] = {
    ALLOWED: "the policy allowed the request",
    AGENT_KILLED: "the agent is on the kill list (data.egress.killed); everything is denied",
    AGENT_UNKNOWN: "the policy data has no rules for this user/agent",
    HOST_NOT_ALLOWED: "no rule of the agent admits this host and port",
    SCHEME_NOT_ALLOWED: "a rule admits the host, but not over this scheme (http vs https)",
    METHOD_NOT_ALLOWED: "a rule admits the host, but not this HTTP method",
    PATH_NOT_ALLOWED: "a rule admits host and method, but not this path",
    DEFAULT_DENY: "nothing allowed the request",
    CREDENTIAL_MISSING: "no Proxy-Authorization credential was sent (407)",
    CREDENTIAL_MALFORMED: "Proxy-Authorization is not Basic base64(agent:token) (407)",
    CREDENTIAL_INVALID: "unknown or revoked token, or the token belongs to another agent (407)",
    DESTINATION_MISMATCH: "CONNECT target, TLS SNI, Host and :authority/absolute URI disagree",
    PATH_AMBIGUOUS: "dot-segments or encoded separators an origin may resolve otherwise",
    DIAL_NOT_AUTHORIZED: "the proxy refused to open an upstream connection no decision allowed",
    POLICY_ERROR: "the policy engine failed; denied (fail closed)",
    POLICY_TIMEOUT: "the policy engine did not answer in time; denied (fail closed)",
    POLICY_UNDEFINED: "the policy returned no decision document; denied (fail closed)",
    POLICY_MALFORMED: "the decision document had the wrong shape or types; denied (fail closed)",
    PLACEHOLDER_UNKNOWN: "a placeholder token that is not this agent's was presented",
    SECRET_NOT_ALLOWED: "the policy did not list this secret for this request",
    SECRET_HOST_NOT_BOUND: "the secret's own host binding does not admit this destination",
    SECRET_UNAVAILABLE: "the secret store could not be read; denied, placeholder not forwarded",
    UPSTREAM_TLS_FAILED: "the upstream certificate did not verify (502)",
    UPSTREAM_CONNECT_FAILED: "the upstream could not be reached (502)",
    UPSTREAM_ERROR: "the upstream connection failed mid-request",
    CLIENT_ABORTED: "the agent closed the connection before the answer",
}

PLACEHOLDER_OBFUSCATED = "placeholder_obfuscated"
DESCRIPTIONS[PLACEHOLDER_OBFUSCATED] = (
    "a placeholder was hidden behind percent-encoding; refused rather than forwarded raw"
)

DESTINATION_FORBIDDEN = "destination_forbidden"
DESTINATION_UNRESOLVABLE = "destination_unresolvable"
DESCRIPTIONS[DESTINATION_FORBIDDEN] = (
    "the destination resolves to an address egress never dials (private, loopback, metadata,"
    " the proxy itself, --deny-cidr)"
)
DESCRIPTIONS[DESTINATION_UNRESOLVABLE] = "the destination name did not resolve"

HTTP_MALFORMED = "http_malformed"
DESCRIPTIONS[HTTP_MALFORMED] = (
    "the request is not well-formed HTTP (control characters, obs-fold, Host count, version,"
    " HTTP/2 connection headers); refused, nothing forwarded"
)

HEADERS_TOO_LARGE = "headers_too_large"
DESCRIPTIONS[HEADERS_TOO_LARGE] = "more header bytes or fields than the proxy forwards (431)"

AUDIT_UNAVAILABLE = "audit_unavailable"
DESCRIPTIONS[AUDIT_UNAVAILABLE] = (
    "decision events cannot be written right now; no request is allowed without its event (503)"
)

# -- the LLM gateway ----------------------------------------------------------------------
ROUTE_NOT_ALLOWED = "route_not_allowed"
MODEL_NOT_ALLOWED = "model_not_allowed"
ROUTE_UNKNOWN = "route_unknown"
RATE_LIMITED = "rate_limited"
TOKEN_BUDGET_EXHAUSTED = "token_budget_exhausted"  # noqa: S105 (a reason code)
DESCRIPTIONS.update(
    {
        ROUTE_NOT_ALLOWED: "gateway: no rule of the agent admits this route",
        MODEL_NOT_ALLOWED: "gateway: the route is admitted, this model is not",
        ROUTE_UNKNOWN: "gateway: no such route is configured",
        RATE_LIMITED: "gateway: the agent's requests-per-minute limit is reached (429)",
        TOKEN_BUDGET_EXHAUSTED: "gateway: the agent's tokens-per-day budget is spent (429)",
    }
)

# -- the promise without exceptions (issue 13): every workstream's codes, declared once ----
SECRET_PLAINTEXT_REFUSED = "secret_plaintext_refused"  # noqa: S105 (a reason code)
RESPONSE_UNDECODABLE = "response_undecodable"
CREDENTIAL_REVOKED = "credential_revoked"
REQUEST_HEAD_TIMEOUT = "request_head_timeout"
IDLE_TIMEOUT = "idle_timeout"
TOO_MANY_CONNECTIONS = "too_many_connections"
BODY_TOO_LARGE = "body_too_large"
UPSTREAM_PROTOCOL_ERROR = "upstream_protocol_error"
DESCRIPTIONS.update(
    {
        SECRET_PLAINTEXT_REFUSED: (
            "a secret would travel over plain HTTP and does not allow it (secrets put"
            " --allow-plaintext); refused, nothing forwarded"
        ),
        RESPONSE_UNDECODABLE: (
            "the answer uses a content-coding the proxy cannot decode, so it cannot be checked"
            " for the agent's secrets; refused (502)"
        ),
        CREDENTIAL_REVOKED: (
            "the proxy credential was revoked while the connection was open; the connection is"
            " closed (407 for a request in flight)"
        ),
        REQUEST_HEAD_TIMEOUT: "the client did not send a complete request head in time (408)",
        IDLE_TIMEOUT: "a keep-alive connection or tunnel was idle past its timeout and closed",
        TOO_MANY_CONNECTIONS: (
            "the agent (or unauthenticated clients together) hold the most connections allowed"
            " (429)"
        ),
        BODY_TOO_LARGE: "the body is larger than the proxy holds or forwards (413)",
        UPSTREAM_PROTOCOL_ERROR: (
            "the upstream answered with HTTP the proxy does not forward (for example an"
            " unsupported informational answer); refused (502)"
        ),
    }
)

STATE_LOCKED = "state_locked"
DESCRIPTIONS[STATE_LOCKED] = (
    "another egress process holds this decision log or state file (one writer per file):"
    " give each process its own --state-dir or --decision-log"
)

SECRET_VALUE_IN_REQUEST = "secret_value_in_request"  # noqa: S105 (a reason code)
DESCRIPTIONS[SECRET_VALUE_IN_REQUEST] = (
    "the request carries a real secret value of the agent (never its placeholder): it leaked"
    " somewhere; refused, and the decision event shows the placeholder instead"
)

H2_ABUSE = "h2_abuse"
DESCRIPTIONS[H2_ABUSE] = (
    "an HTTP/2 client reset streams faster than the proxy allows (rapid reset) or opened more"
    " concurrent streams than advertised; the connection is closed (GOAWAY)"
)
