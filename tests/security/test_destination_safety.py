"""Destination safety over the wire: what the proxy refuses to dial, however it is written.

Live cases use loopback forms only (127.0.0.0/8, ::1): a regression would then still send
nothing beyond this machine. Every other range (RFC 1918, link-local/metadata, CGNAT, ULA,
NAT64, 6to4, Teredo...) is covered by tests/unit/test_addresses.py on the same code path.
Names are answered by a real DNS server under the test's control (tests/support/dns_server.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import World
from tests.support.clients import get, plain_socket_request
from tests.support.dns_server import FakeDNS
from tests.support.origin import Origin, start_origin
from tests.support.policy import policy_doc
from tests.support.proxy import ProxyProcess, basic, parse_response, raw_connect, start_proxy

pytestmark = pytest.mark.e2e


@dataclass
class Setup:
    dns: FakeDNS
    public: Origin  # 127.0.0.2:P, stands for "a public address" (the only one allowed)
    internal: Origin  # 127.0.0.1:P, stands for "an internal address" (never allowed)
    data_file: object


@pytest.fixture(scope="module")
def setup(world: World, tmp_path_factory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("dest")
    leaf = world.test_ca.issue(
        "rebind", ["rebind.test", "public.test", "localhost"], ["127.0.0.1", "127.0.0.2"]
    )
    public = start_origin(leaf.cert_path, leaf.key_path, host="127.0.0.2")
    internal = start_origin(leaf.cert_path, leaf.key_path, host="127.0.0.1", port=public.port)
    ports = [public.port, world.origin.port, world.plain.port]
    rule = {
        "id": "anything",
        "hosts": ["**"],
        "ports": ports,
        "schemes": ["https", "http"],
        "methods": ["GET"],
    }
    data = policy_doc({"alice@example.com/triage-bot": [rule]})
    data_file = root / "data.json"
    data_file.write_text(json.dumps(data))
    dns = FakeDNS()
    yield Setup(dns, public, internal, data_file)
    dns.close()
    public.close()
    internal.close()


def _proxy(world: World, setup: Setup, tmp_path, *args: str, loopback: bool) -> ProxyProcess:
    state = tmp_path / f"state{len(list(tmp_path.iterdir()))}"
    state.mkdir()
    (state / "identities.json").write_bytes((world.state_dir / "identities.json").read_bytes())
    return start_proxy(
        state_dir=state,
        ca_dir=world.ca_dir,
        data_file=setup.data_file,
        upstream_ca=world.test_ca.cert_path,
        allow_loopback=loopback,
        extra_args=["--dns-server", setup.dns.address, *args],
    )


@pytest.fixture(scope="module")
def strict(world: World, setup: Setup, tmp_path_factory) -> Iterator[ProxyProcess]:
    p = _proxy(world, setup, tmp_path_factory.mktemp("strict"), loopback=False)
    yield p
    p.stop()


def _connect(p: ProxyProcess, world: World, target: str) -> tuple[int, dict[str, str], bytes]:
    sock, answer = raw_connect(p.port, target, basic(world.alice.name, world.alice.token))
    sock.close()
    return parse_response(answer)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0x7F.0.0.1",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "017700000001",
        "127.000.000.001",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "localhost",
    ],
)
def test_loopback_in_every_form_is_refused(world: World, setup: Setup, strict, host) -> None:
    before = world.origin.connections
    status, headers, body = _connect(strict, world, f"{host}:{world.origin.port}")
    assert status == 403, body
    assert headers["x-egress-reason"] == "destination_forbidden"
    assert "not a public unicast address" in json.loads(body)["message"]
    assert world.origin.connections == before
    event = strict.event_for(headers["x-egress-decision-id"])
    assert event["kind"] == "connect" and event["result"]["reason"] == "destination_forbidden"


def test_plain_http_to_numeric_loopback_is_refused(world: World, strict) -> None:
    before = len(world.plain.seen)
    raw = get(
        f"http://2130706433:{world.plain.port}/api/x",
        f"2130706433:{world.plain.port}",
        {"Proxy-Authorization": basic(world.alice.name, world.alice.token)},
    )
    status, headers, _ = plain_socket_request(strict, raw)
    assert status == 403 and headers["x-egress-reason"] == "destination_forbidden"
    assert len(world.plain.seen) == before


def test_name_resolving_to_loopback_is_refused(world: World, setup: Setup, strict) -> None:
    setup.dns.answers["internal.test"] = [["127.0.0.9"]]
    status, headers, _ = _connect(strict, world, f"internal.test:{world.origin.port}")
    assert status == 403 and headers["x-egress-reason"] == "destination_forbidden"


def test_unresolvable_name(world: World, strict) -> None:
    status, headers, _ = _connect(strict, world, f"nothing-here.test:{world.origin.port}")
    assert status == 403 and headers["x-egress-reason"] == "destination_unresolvable"


def test_dns_rebinding_cannot_reach_internal_address(world: World, setup: Setup, tmp_path) -> None:
    # 127.0.0.2 plays "public" (allowed), 127.0.0.1 plays "internal" (refused)
    p = _proxy(world, setup, tmp_path, "--allow-cidr", "127.0.0.2/32", loopback=False)
    setup.dns.answers["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    try:
        from tests.support.clients import open_tunnel

        t = open_tunnel(p, world.alice, f"rebind.test:{setup.public.port}", "rebind.test")
        try:
            statuses = [
                t.request(get(f"/api/r{i}", f"rebind.test:{setup.public.port}"))[0]
                for i in range(3)
            ]
        finally:
            t.close()
        assert statuses == [200, 200, 200]
        assert [s.path for s in setup.public.seen][-3:] == ["/api/r0", "/api/r1", "/api/r2"]
        assert setup.internal.seen == [] and setup.internal.connections == 0
        # the name now answers with the internal address: a new connection is refused
        status, headers, _ = _connect(p, world, f"rebind.test:{setup.public.port}")
        assert status == 403 and headers["x-egress-reason"] == "destination_forbidden"
        assert setup.internal.connections == 0
        assert setup.dns.queries["rebind.test"] == 2  # resolved once per connection
    finally:
        p.stop()


def test_proxy_never_dials_itself(world: World, setup: Setup, tmp_path) -> None:
    """Even with loopback allowed and a policy that admits the proxy's own port, the address
    check refuses the loop."""
    own = tmp_path / "own.json"
    own.write_text(setup.data_file.read_text())
    state = tmp_path / "own-state"
    state.mkdir()
    (state / "identities.json").write_bytes((world.state_dir / "identities.json").read_bytes())
    q = start_proxy(
        state_dir=state, ca_dir=world.ca_dir, data_file=own, upstream_ca=world.test_ca.cert_path
    )
    try:
        data = json.loads(own.read_text())
        data["egress"]["agents"]["alice@example.com"]["triage-bot"]["rules"][0]["ports"].append(
            q.port
        )
        own.write_text(json.dumps(data))
        deadline = time.monotonic() + 10
        while True:  # wait for the hot reload to admit the port, then for the address check
            status, headers, body = _connect(q, world, f"127.0.0.1:{q.port}")
            if headers.get("x-egress-reason") != "host_not_allowed" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 403, body
        assert headers["x-egress-reason"] == "destination_forbidden"
        assert "proxy itself" in json.loads(body)["message"]
    finally:
        q.stop()


def test_deny_cidr_beats_allow_cidr(world: World, setup: Setup, tmp_path) -> None:
    p = _proxy(world, setup, tmp_path, "--deny-cidr", "127.0.0.1/32", loopback=True)
    try:
        status, headers, _ = _connect(p, world, f"127.0.0.1:{world.origin.port}")
        assert status == 403 and headers["x-egress-reason"] == "destination_forbidden"
        ok, _, _ = _connect(p, world, f"127.0.0.2:{setup.public.port}")
        assert ok == 200
    finally:
        p.stop()
