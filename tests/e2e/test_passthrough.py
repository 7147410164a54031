"""Hosts marked "inspect": false: decided on CONNECT, relayed without MITM, logged at close."""

from __future__ import annotations

import json
import ssl
import time

import pytest

from tests.conftest import World
from tests.support.clients import get
from tests.support.proxy import basic, parse_response, proxy_for, raw_connect, read_http_response

pytestmark = pytest.mark.e2e


def _data(world: World, tmp_path, **rule_extra) -> object:
    data = json.loads(world.data_file.read_text())
    data["egress"]["agents"]["alice@example.com"]["triage-bot"]["rules"] = [
        {
            "id": "blobs",
            "hosts": ["localhost"],
            "ports": [world.origin.port],
            "inspect": False,
            **rule_extra,
        }
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return path


def test_passthrough_tunnel_is_not_intercepted(world: World, tmp_path) -> None:
    p = proxy_for(world, tmp_path, data_file=_data(world, tmp_path), secrets=False)
    try:
        sock, answer = raw_connect(
            p.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
        )
        assert parse_response(answer)[0] == 200
        # trust only the origin's own CA: the handshake succeeds only if nothing intercepts
        ctx = ssl.create_default_context(cafile=str(world.test_ca.cert_path))
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
        assert issuer["commonName"] == "origin-test-ca"
        for i in range(3):
            tls.sendall(get(f"/api/pass{i}", f"localhost:{world.origin.port}"))
            status, _, body = parse_response(read_http_response(tls))
            assert status == 200 and b"/api/pass" in body
        tls.close()
        deadline = time.monotonic() + 10
        tunnels = []
        while time.monotonic() < deadline and not tunnels:
            tunnels = [e for e in p.events() if e["kind"] == "tunnel"]
            time.sleep(0.1)
        assert len(tunnels) == 1
        event = tunnels[0]
        assert event["result"]["mode"] == "passthrough" and event["result"]["rules"] == ["blobs"]
        assert event["bytes"]["request"] > 300 and event["bytes"]["response"] > 300
        assert event["agent"]["user"] == "alice@example.com"
        assert [e for e in p.events() if e["kind"] == "request"] == []  # no MITM, no requests
    finally:
        p.stop()


def test_secret_on_a_passthrough_host_is_a_policy_error(world: World, tmp_path) -> None:
    p = proxy_for(
        world, tmp_path, data_file=_data(world, tmp_path, secrets=["github"]), secrets=False
    )
    try:
        sock, answer = raw_connect(
            p.port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
        )
        sock.close()
        status, headers, _ = parse_response(answer)
        assert status == 403 and headers["x-egress-reason"] == "policy_malformed"
    finally:
        p.stop()
