"""Addon behaviour on mitmproxy's test flows (no sockets: the wire is covered in tests/e2e)."""

from __future__ import annotations

import ipaddress

from mitmproxy.proxy import server_hooks
from mitmproxy.test import tflow

from egress.destination.addresses import AddressPolicy
from egress.destination.resolver import Resolved, Resolver
from egress.identity.credentials import IdentitiesFile
from egress.policy.decision import Decision
from egress.proxy import flowstate
from egress.proxy.addons.authorize import Authorize
from egress.proxy.addons.identify import Identify, strip_identity_claims
from egress.proxy.addons.upstream import Upstream
from egress.proxy.flowstate import ConnRegistry
from tests.support.proxy import basic


class Engine:
    name = "fixed"

    def __init__(self, decision: Decision | Exception) -> None:
        self.decision = decision
        self.inputs: list[dict] = []

    async def decide(self, policy_input):
        self.inputs.append(policy_input)
        if isinstance(self.decision, Exception):
            raise self.decision
        return self.decision

    async def close(self) -> None:
        return None


def _flow(host: str = "192.0.2.10", port: int = 443, auth: str | None = None):
    f = tflow.tflow()
    f.request.host, f.request.port, f.request.scheme = host, port, "https"
    f.request.headers["host"] = host
    if auth:
        f.request.headers["proxy-authorization"] = auth
    return f


def test_identify_plain_request(tmp_path) -> None:
    ids = IdentitiesFile(tmp_path / "i.json")
    identity, token = ids.add("alice@example.com", "bot")
    conns = ConnRegistry()
    addon = Identify(ids, conns)
    ok = _flow(auth=basic("bot", token))
    ok.request.headers["x-user"] = "root"
    addon.request(ok)
    assert ok.metadata[flowstate.IDENTITY] == identity
    assert "proxy-authorization" not in ok.request.headers
    assert "x-user" not in ok.request.headers
    bad = _flow()
    addon.request(bad)
    assert bad.response is not None and bad.response.status_code == 407


async def test_authorize_engine_exception_fails_closed(tmp_path) -> None:
    ids = IdentitiesFile(tmp_path / "i.json")
    _, token = ids.add("alice@example.com", "bot")
    conns = ConnRegistry()
    f = _flow(auth=basic("bot", token))
    Identify(ids, conns).request(f)
    await Authorize(Engine(RuntimeError("boom")), conns, _resolver()).request(f)
    assert f.response is not None and f.response.status_code == 403
    assert f.metadata[flowstate.DENIED] == "policy_error"


async def test_authorize_allow_records_dial_and_input(tmp_path) -> None:
    ids = IdentitiesFile(tmp_path / "i.json")
    _, token = ids.add("alice@example.com", "bot")
    conns = ConnRegistry()
    f = _flow(auth=basic("bot", token))
    Identify(ids, conns).request(f)
    engine = Engine(Decision(True, "allowed"))
    await Authorize(engine, conns, _resolver()).request(f)
    assert f.response is None
    assert conns.get(f.client_conn).allowed_dials == {("192.0.2.10", 443)}
    inp = engine.inputs[0]
    assert inp["agent"]["user"] == "alice@example.com"
    assert inp["request"]["host"] == "192.0.2.10" and inp["phase"] == "request"


def _resolver() -> Resolver:
    return Resolver(AddressPolicy.from_strings(["0.0.0.0/0"], []))


def test_upstream_refuses_undecided_dial() -> None:
    conns = ConnRegistry()
    f = tflow.tflow()
    f.server_conn.address = ("10.0.0.1", 443)
    data = server_hooks.ServerConnectionHookData(server=f.server_conn, client=f.client_conn)
    up = Upstream(conns)
    up.server_connect(data)
    assert data.server.error and "dial_not_authorized" in data.server.error
    state = conns.get(f.client_conn)
    state.allowed_dials.add(("10.0.0.1", 443))
    f.server_conn.error = None
    up.server_connect(data)
    assert data.server.error  # allowed, but never resolved and checked: still refused
    state.resolved[("10.0.0.1", 443)] = Resolved("10.0.0.1", 443, ipaddress.ip_address("10.0.0.1"))
    f.server_conn.error = None
    up.server_connect(data)
    assert data.server.error is None
    assert up.refused_dials == 2


def test_strip_identity_claims() -> None:
    f = tflow.tflow()
    for h in ("X-Agent", "x-forwarded-user", "X-Egress-Anything", "Proxy-Authorization"):
        f.request.headers[h] = "v"
    f.request.headers["accept"] = "a"
    strip_identity_claims(f.request.headers)
    assert "accept" in f.request.headers
    for h in ("X-Agent", "x-forwarded-user", "X-Egress-Anything", "Proxy-Authorization"):
        assert h not in f.request.headers
