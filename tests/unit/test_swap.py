"""SwapSecrets on mitmproxy's test flows: a placeholder becomes its real value only for its own
agent, a secret the decision listed, a host its binding admits and an encrypted connection;
every other case is a 403 with the reason code, and nothing is swapped."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from egress import reasons
from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.policy.decision import Decision
from egress.proxy import flowstate
from egress.proxy.addons.swap import SwapSecrets
from egress.proxy.replies import DECISION_ID_HEADER, REASON_HEADER
from egress.secrets.local import LocalSecretStore
from egress.secrets.placeholders import mint_placeholder
from egress.secrets.released import Released

ALICE = Identity("alice@example.com", "triage-bot", "ns")
BOB = Identity("bob@example.com", "triage-bot", "ns")
VALUE = 'real/value+1 "q"&x=y'
ALLOW_GH = Decision(True, "allowed", secrets=frozenset({"github"}))


@pytest.fixture
def store(tmp_path: Path) -> LocalSecretStore:
    return LocalSecretStore.open(tmp_path / "s.enc", tmp_path / "s.key", create=True)


def _put(store: LocalSecretStore, who: Identity, name: str, hosts: list[str], **kw: Any) -> str:
    return store.put(who.user, who.agent, name, VALUE, hosts, **kw).placeholder


def _flow(
    host: str = "api.github.com",
    *,
    scheme: str = "https",
    path: str = "/repos",
    who: Identity | None = ALICE,
    decision: Decision | None = ALLOW_GH,
) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.scheme, f.request.host, f.request.port = scheme, host, 443
    f.request.path = path
    f.request.headers["host"] = host
    if who is not None:
        f.metadata[flowstate.IDENTITY] = who
    if decision is not None:
        f.metadata[flowstate.DECISION] = decision
    return f


async def _refused(swap: SwapSecrets, f: http.HTTPFlow, reason: str) -> None:
    await swap.request(f)
    assert f.response is not None and f.response.status_code == 403
    assert f.response.headers[REASON_HEADER] == reason
    assert f.metadata[flowstate.DENIED] == reason
    assert flowstate.SECRETS_USED not in f.metadata
    body = json.loads(f.response.content or b"{}")
    assert body["reason"] == reason and body["decision_id"] == f.metadata[flowstate.DECISION_ID]
    assert f.response.headers[DECISION_ID_HEADER] == f.metadata[flowstate.DECISION_ID]
    assert VALUE not in f.request.headers.get("authorization", "")


async def test_header_placeholder_swapped_for_its_approved_host(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ph}"
    await SwapSecrets(store).request(f)
    assert f.response is None
    assert f.request.headers["authorization"] == f"Bearer {VALUE}"
    assert f.request.headers["accept-encoding"] == "identity"  # so an echo can be scrubbed
    assert f.metadata[flowstate.SECRETS_USED] == ["github"]


async def test_no_placeholder_leaves_request_alone(store: LocalSecretStore) -> None:
    _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = "Bearer nothing-to-swap"
    f.request.headers["accept-encoding"] = "gzip"
    await SwapSecrets(store).request(f)
    assert f.response is None and f.request.headers["accept-encoding"] == "gzip"
    assert flowstate.SECRETS_USED not in f.metadata


@pytest.mark.parametrize(
    "who, decision",
    [
        (None, ALLOW_GH),  # Identify answered already
        (ALICE, None),  # Authorize answered already
        (ALICE, Decision(False, "default_deny", secrets=frozenset({"github"}))),
    ],
)
async def test_never_swaps_without_identity_and_allow(
    store: LocalSecretStore, who: Identity | None, decision: Decision | None
) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(who=who, decision=decision)
    f.request.headers["authorization"] = f"Bearer {ph}"
    await SwapSecrets(store).request(f)
    assert f.response is None and f.request.headers["authorization"] == f"Bearer {ph}"


async def test_flow_already_answered_is_left_alone(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ph}"
    f.response = http.Response.make(418)
    await SwapSecrets(store).request(f)
    assert f.response.status_code == 418 and ph in f.request.headers["authorization"]


async def test_secret_not_listed_by_the_decision_is_refused(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "openai", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ph}"
    await _refused(SwapSecrets(store), f, reasons.SECRET_NOT_ALLOWED)


async def test_host_outside_the_secret_binding_is_refused(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(host="evil.example")
    f.request.headers["authorization"] = f"Bearer {ph}"
    await _refused(SwapSecrets(store), f, reasons.SECRET_HOST_NOT_BOUND)


async def test_another_agents_placeholder_is_refused(store: LocalSecretStore) -> None:
    ph = _put(store, BOB, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ph}"
    await _refused(SwapSecrets(store), f, reasons.PLACEHOLDER_UNKNOWN)


async def test_unknown_placeholder_is_refused(store: LocalSecretStore) -> None:
    _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["x-token"] = mint_placeholder("")
    await _refused(SwapSecrets(store), f, reasons.PLACEHOLDER_UNKNOWN)


async def test_plain_http_refused_unless_the_secret_allows_it(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(scheme="http")
    f.request.headers["authorization"] = f"Bearer {ph}"
    await _refused(SwapSecrets(store), f, reasons.SECRET_PLAINTEXT_REFUSED)
    ph2 = _put(store, BOB, "github", ["api.github.com"], allow_plaintext=True)
    g = _flow(scheme="http", who=BOB)
    g.request.headers["authorization"] = f"Bearer {ph2}"
    await SwapSecrets(store).request(g)
    assert g.response is None and g.request.headers["authorization"] == f"Bearer {VALUE}"


async def test_percent_encoded_placeholder_in_url_is_refused(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(path="/q?t=" + "".join(f"%{b:02X}" for b in ph.encode()))
    await _refused(SwapSecrets(store), f, reasons.PLACEHOLDER_OBFUSCATED)


async def test_refusal_keeps_an_existing_decision_id_and_drops_secrets_used(
    store: LocalSecretStore,
) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(host="evil.example")
    f.request.headers["authorization"] = f"Bearer {ph}"
    f.metadata[flowstate.DECISION_ID] = "dec-1"
    f.metadata[flowstate.SECRETS_USED] = ["stale"]
    await _refused(SwapSecrets(store), f, reasons.SECRET_HOST_NOT_BOUND)
    assert f.metadata[flowstate.DECISION_ID] == "dec-1"


async def test_one_refused_placeholder_refuses_the_whole_request(store: LocalSecretStore) -> None:
    ok = _put(store, ALICE, "github", ["api.github.com"])
    other = _put(store, ALICE, "openai", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ok}"
    f.request.headers["x-other"] = other
    await _refused(SwapSecrets(store), f, reasons.SECRET_NOT_ALLOWED)
    assert f.request.headers["authorization"] == f"Bearer {ok}"  # nothing half-swapped


async def test_basic_credentials_swapped_inside_base64(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.headers["authorization"] = "Basic " + base64.b64encode(f"x:{ph}".encode()).decode()
    await SwapSecrets(store).request(f)
    scheme, _, param = f.request.headers["authorization"].partition(" ")
    assert scheme == "Basic" and base64.b64decode(param).decode() == f"x:{VALUE}"


async def test_path_and_query_swapped_percent_encoded(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow(path=f"/repos/{ph}?token={ph}")
    await SwapSecrets(store).request(f)
    enc = quote(VALUE, safe="")
    assert f.request.path == f"/repos/{enc}?token={enc}"
    assert f.metadata[flowstate.SECRETS_USED] == ["github"]


@pytest.mark.parametrize(
    "ctype, encode",
    [
        ("application/x-www-form-urlencoded", lambda v: quote_plus(v, safe="")),
        ("application/json", lambda v: json.dumps(v)[1:-1]),
        ("text/plain", lambda v: v),
    ],
)
async def test_body_swapped_in_the_body_encoding(
    store: LocalSecretStore, ctype: str, encode: Callable[[str], str]
) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    f = _flow()
    f.request.method = "POST"
    f.request.headers["content-type"] = ctype
    f.request.set_content(f"key={ph}&n=1".encode())
    await SwapSecrets(store).request(f)
    assert f.response is None
    assert f.request.get_content() == f"key={encode(VALUE)}&n=1".encode()


async def test_released_records_what_went_on_the_wire(store: LocalSecretStore) -> None:
    ph = _put(store, ALICE, "github", ["api.github.com"])
    released = Released()
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {ph}"
    await SwapSecrets(store, released).request(f)
    assert released.for_host("api.github.com") == ((VALUE, ph),)
    refused = Released()
    g = _flow(host="evil.example")
    g.request.headers["authorization"] = f"Bearer {ph}"
    await SwapSecrets(store, refused).request(g)
    assert refused.for_host("evil.example") == () and refused.for_host("api.github.com") == ()


class _BrokenStore:
    async def lookup(self, who: Identity, core: str) -> None:
        raise SecretStoreError(reasons.SECRET_UNAVAILABLE, "down")


async def test_store_unavailable_fails_closed() -> None:
    f = _flow()
    f.request.headers["authorization"] = f"Bearer {mint_placeholder('')}"
    await _refused(SwapSecrets(_BrokenStore()), f, reasons.SECRET_UNAVAILABLE)  # type: ignore[arg-type]
