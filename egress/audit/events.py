"""The decision event: field names are constants, modelled on OPA's decision-log event.

OPA tooling knows ``decision_id``, ``timestamp``, ``path``, ``input``, ``result``, ``labels``
and ``metrics``; the proxy adds who called (``agent``), what went out (``request``,
``secrets``), what came back (``status``, ``bytes``) and the chain (``seq``, ``prev_hash``,
``mac``: see ``chain.py``).
Secret values never enter an event: ``secrets`` holds names only.
"""

from __future__ import annotations

import datetime
import uuid
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from egress.policy.decision import Decision

SCHEMA_VERSION: Final = 1


class Fields:
    SCHEMA: Final = "schema"
    DECISION_ID: Final = "decision_id"
    TIMESTAMP: Final = "timestamp"
    PATH: Final = "path"
    KIND: Final = "kind"  # "request" | "connect"
    AGENT: Final = "agent"  # {user, name, namespace} or null when identity failed
    INPUT: Final = "input"  # the policy input, masked by configuration (null if never asked)
    REQUEST: Final = "request"  # {method, scheme, host, port, path, http_version}
    RESULT: Final = "result"  # {allow, reason, rules, engine, revision, upstream, mode, would_deny}
    SECRETS: Final = "secrets"  # names injected (never values)
    STATUS: Final = "status"  # HTTP status the agent saw, null if none
    BYTES: Final = "bytes"  # {request, response}
    METRICS: Final = "metrics"  # {decision_ms, total_ms}
    ERROR: Final = "error"  # short error text (never secret values) or null
    USAGE: Final = "usage"  # gateway: {route, model, prompt_tokens, completion_tokens}; else null
    LABELS: Final = "labels"  # {proxy_id, version, component: proxy | gateway}
    SEQ: Final = "seq"  # position in the chain, continuous across files and restarts
    PREV_HASH: Final = "prev_hash"  # sha256 hex of the previous line (chained across files)
    # what happened to the log itself just before this event (torn tail cut at start, file
    # reopened after a rename/deletion/SIGHUP, events dropped by a full queue); absent if nothing
    LOG_NOTE: Final = "log_note"
    MAC: Final = "mac"  # HMAC-SHA256 of the line with the writer's key (null: unkeyed); last


REQUIRED_FIELDS: Final = (
    Fields.SCHEMA,
    Fields.DECISION_ID,
    Fields.TIMESTAMP,
    Fields.PATH,
    Fields.KIND,
    Fields.AGENT,
    Fields.INPUT,
    Fields.REQUEST,
    Fields.RESULT,
    Fields.SECRETS,
    Fields.STATUS,
    Fields.BYTES,
    Fields.METRICS,
    Fields.ERROR,
    Fields.USAGE,
    Fields.LABELS,
    Fields.SEQ,
    Fields.PREV_HASH,
    Fields.MAC,
)

DECISION_LOG_PATH: Final = "egress/decision"


def utc_timestamp(seconds: float) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: the ``timestamp`` of every event."""
    return (
        datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z")
    )


def new_decision_id() -> str:
    return str(uuid.uuid4())


def make_event(
    *,
    decision_id: str,
    timestamp: str,
    kind: str,
    agent: dict[str, str] | None,
    policy_input: dict[str, Any] | None,
    request: dict[str, Any],
    result: dict[str, Any],
    secrets: list[str],
    status: int | None,
    bytes_in: int,
    bytes_out: int,
    decision_ms: float | None,
    total_ms: float | None,
    error: str | None,
    labels: dict[str, str],
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        Fields.SCHEMA: SCHEMA_VERSION,
        Fields.DECISION_ID: decision_id,
        Fields.TIMESTAMP: timestamp,
        Fields.PATH: DECISION_LOG_PATH,
        Fields.KIND: kind,
        Fields.AGENT: agent,
        Fields.INPUT: policy_input,
        Fields.REQUEST: request,
        Fields.RESULT: result,
        Fields.SECRETS: sorted(secrets),
        Fields.STATUS: status,
        Fields.BYTES: {"request": bytes_in, "response": bytes_out},
        Fields.METRICS: {"decision_ms": decision_ms, "total_ms": total_ms},
        Fields.ERROR: error,
        Fields.USAGE: usage,
        Fields.LABELS: labels,
    }


def event_result(
    decision: Decision | None,
    *,
    allow: bool,
    reason: str,
    upstream: str | None = None,
    mode: str = "enforce",
    would_deny: bool = False,
) -> dict[str, Any]:
    """The ``result`` field: the verdict, the rules and engine revision behind it, and what
    happened upstream. ``decision`` is None when no policy was asked (e.g. refused earlier)."""
    return {
        "allow": allow,
        "reason": reason,
        "rules": list(decision.rules) if decision else [],
        "engine": decision.engine if decision else "",
        "revision": decision.revision if decision else "",
        "upstream": upstream,
        "mode": mode,
        "would_deny": would_deny,
    }


MASK = "<masked>"


def mask_input(
    policy_input: dict[str, Any] | None, *, query: bool = True, headers: bool = False
) -> dict[str, Any] | None:
    """A copy of the decision input safe to log: query values (which can carry tokens) are
    masked by default, header values on request; keys stay so queries and replays still see
    which parameters were sent."""
    if policy_input is None:
        return None
    out = dict(policy_input)
    req = dict(out.get("request") or {})
    if query and isinstance(req.get("query"), dict):
        req["query"] = {k: [MASK for _ in v] for k, v in req["query"].items()}
    if headers and isinstance(req.get("headers"), dict):
        req["headers"] = dict.fromkeys(req["headers"], MASK)
    out["request"] = req
    return out
