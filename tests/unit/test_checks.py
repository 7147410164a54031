"""RequestChecks on mitmproxy's test flows: each refusal with its status and reason, and a clean
request passed on to Authorize with its decision id and what the agent sent (the wire forms are
covered in tests/security/test_malformed_http.py and tests/e2e/test_destination.py)."""

from __future__ import annotations

import pytest
from mitmproxy.test import tflow

from egress import reasons
from egress.identity.model import Identity
from egress.proxy import flowstate
from egress.proxy.addons.checks import RequestChecks, refuse
from egress.proxy.flowstate import ConnRegistry

ALICE = Identity(user="alice@example.com", agent="bot", namespace="agent-bot")


def _flow(path: str = "/repos/a", method: bytes = b"GET", host: str = "api.example.com"):
    f = tflow.tflow()
    f.request.host = host
    f.request.port = 443
    f.request.scheme = "https"
    f.request.http_version = "HTTP/1.1"
    f.request.data.method = method
    f.request.path = path
    f.request.headers.clear()
    f.request.headers["Host"] = host
    f.metadata[flowstate.IDENTITY] = ALICE
    return f


def _checked(f, *, audit_ok: bool = True, limits: tuple[int, int] = (64 * 1024, 128)):
    RequestChecks(ConnRegistry(), audit_ok=lambda: audit_ok, header_limits=limits).request(f)
    return f


def _refused_with(f, status: int, reason: str) -> None:
    assert f.response is not None
    assert f.response.status_code == status
    assert f.metadata[flowstate.DENIED] == reason
    assert f.response.headers["x-egress-decision-id"] == f.metadata[flowstate.DECISION_ID]


def test_clean_request_passes_with_decision_id_and_as_sent() -> None:
    f = _checked(_flow("/repos/a?q=1", b"POST"))
    assert f.response is None
    assert f.metadata[flowstate.DECISION_ID]
    assert f.metadata[flowstate.AS_SENT]["method"] == "POST"
    assert f.metadata[flowstate.AS_SENT]["path"] == "/repos/a"  # the query is not kept


def test_no_identity_is_407() -> None:
    f = _flow()
    del f.metadata[flowstate.IDENTITY]
    _refused_with(_checked(f), 407, "credential_missing")


def test_audit_down_is_503() -> None:
    _refused_with(_checked(_flow(), audit_ok=False), 503, reasons.AUDIT_UNAVAILABLE)


@pytest.mark.parametrize(("fields", "limits"), [(3, (64 * 1024, 2)), (1, (10, 128))])
def test_header_block_over_the_limit_is_431(fields: int, limits: tuple[int, int]) -> None:
    f = _flow()
    for i in range(fields):
        f.request.headers[f"x-h{i}"] = "v" * 20
    _refused_with(_checked(f, limits=limits), 431, reasons.HEADERS_TOO_LARGE)


@pytest.mark.parametrize("method", [b"get", b"G ET", b"GE\x00T"])
def test_malformed_method_is_400(method: bytes) -> None:
    _refused_with(_checked(_flow(method=method)), 400, reasons.HTTP_MALFORMED)


def test_two_host_headers_are_400() -> None:
    f = _flow()
    f.request.headers.add("Host", "other.example.com")
    _refused_with(_checked(f), 400, reasons.HTTP_MALFORMED)


def test_host_header_disagreeing_with_target_is_421() -> None:
    f = _flow()
    f.request.headers["Host"] = "evil.example.com"
    _refused_with(_checked(f), 421, reasons.DESTINATION_MISMATCH)


@pytest.mark.parametrize("path", ["/a/../admin", "/a/%2e%2e/admin", "/a%2fb", "/a\\b", "/ok/..;/x"])
def test_ambiguous_path_is_400(path: str) -> None:
    _refused_with(_checked(_flow(path)), 400, "path_ambiguous")


def test_an_answered_flow_is_left_alone() -> None:
    f = _flow("/a/../b")
    refuse(f, 403, "policy_denied")
    first = f.metadata[flowstate.DECISION_ID]
    _checked(f)
    assert f.response.status_code == 403
    assert f.metadata[flowstate.DECISION_ID] == first
