"""What the Sessions sweeper decides for a connection, case by case (the clocks' semantics).

The end-to-end tests (tests/security/test_timeouts.py, test_revocation.py) prove the closures
over real sockets; this table pins down every combination of state and clock at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egress.identity.credentials import IdentitiesFile, hash_token
from egress.proxy.addons.sessions import Sessions, Timeouts
from egress.proxy.flowstate import ConnRegistry, ConnState

T = Timeouts(head=10, idle=60, tunnel_idle=300)
NOW = 1000.0


def _state(**kw: Any) -> ConnState:
    s = ConnState(opened=NOW - 500, idle_since=NOW - 400)  # answered before, by default
    for k, v in kw.items():
        setattr(s, k, v)
    return s


CASES: list[tuple[str, dict[str, Any], bool, str | None]] = [
    # (case, state fields, h2, expected reason)
    ("fresh, within head", {"opened": NOW - 5, "idle_since": NOW - 5}, False, None),
    (
        "fresh, past head",
        {"opened": NOW - 11, "idle_since": NOW - 11},
        False,
        "request_head_timeout",
    ),
    (
        "fresh h2-negotiated, past head",
        {"opened": NOW - 11, "idle_since": NOW - 11},
        True,
        "request_head_timeout",
    ),
    ("idle within idle", {"idle_since": NOW - 30}, False, None),
    ("idle past idle", {"idle_since": NOW - 61}, False, "idle_timeout"),
    ("head begun, within head", {"head_started": NOW - 9}, False, None),
    ("head begun, past head", {"head_started": NOW - 11}, False, "request_head_timeout"),
    (
        "h2 frames after an answer, within idle",
        {"idle_since": NOW - 30, "head_started": NOW - 29},
        True,
        None,
    ),
    ("h2 frames after an answer, past idle", {"head_started": NOW - 100}, True, "idle_timeout"),
    ("request under way, long", {"in_flight": 1, "head_started": None}, False, None),
    ("passthrough busy", {"tunnel_kind": "passthrough", "tunnel_activity": NOW - 1}, False, None),
    (
        "passthrough silent",
        {"tunnel_kind": "passthrough", "tunnel_activity": NOW - 301},
        False,
        "idle_timeout",
    ),
    (
        "websocket silent",
        {"tunnel_kind": "websocket", "tunnel_activity": NOW - 301, "in_flight": 1},
        False,
        "idle_timeout",
    ),
    ("websocket busy", {"tunnel_kind": "websocket", "tunnel_activity": NOW - 299}, False, None),
]


@pytest.fixture
def sessions(tmp_path: Path) -> Sessions:
    return Sessions(IdentitiesFile(tmp_path / "identities.json"), ConnRegistry(), T)


@pytest.mark.parametrize(("case", "fields", "h2", "expected"), CASES, ids=[c[0] for c in CASES])
def test_clock_verdicts(
    sessions: Sessions, case: str, fields: dict[str, Any], h2: bool, expected: str | None
) -> None:
    verdict = sessions._verdict(_state(**fields), sessions.identities.revision, NOW, h2=h2)
    assert (verdict[0] if verdict else None) == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"opened": NOW - 10_000, "idle_since": NOW - 10_000},
        {"idle_since": NOW - 10_000},
        {"head_started": NOW - 10_000},
        {"tunnel_kind": "passthrough", "tunnel_activity": NOW - 10_000},
    ],
)
def test_zero_turns_every_clock_off(tmp_path: Path, fields: dict[str, Any]) -> None:
    off = Sessions(IdentitiesFile(tmp_path / "i.json"), ConnRegistry(), Timeouts(0, 0, 0))
    assert off._verdict(_state(**fields), off.identities.revision, NOW) is None


@pytest.mark.parametrize(
    "fields",
    [{}, {"in_flight": 3}, {"tunnel_kind": "websocket", "tunnel_activity": NOW}],
    ids=["idle", "busy", "websocket"],
)
def test_revocation_beats_every_other_state(tmp_path: Path, fields: dict[str, Any]) -> None:
    ids = IdentitiesFile(tmp_path / "identities.json")
    _, token = ids.add("alice@example.com", "bot")
    sessions = Sessions(ids, ConnRegistry(), T)
    state = _state(
        credential=("bot", hash_token(token)),
        identity_revision=ids.revision,
        idle_since=NOW - 1,
        **fields,
    )
    assert sessions._verdict(state, ids.refresh(), NOW) is None  # valid: nothing to do
    ids.revoke("alice@example.com", "bot")
    verdict = sessions._verdict(state, ids.refresh(), NOW)
    assert verdict is not None and verdict[0] == "credential_revoked"
    assert state.revoked
