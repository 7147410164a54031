"""The live proxy with OPA as in production: bin/opa pulls the policy bundle from the project's
bundle server, the proxy asks OPA (``--opa-url``), and a data edit reaches the agents.

The logged revision is the bundle's content revision; after the data file changes, the bundle
server rebuilds, OPA pulls the new bundle, the proxy's revision follows and the agent's next
request is denied (no answer cached before the edit is served).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from egress.policy.bundle_server import BundleServer
from egress.testing.net import free_port
from egress.testing.opa_fleet import start_bundle_opa
from tests.conftest import World
from tests.support.clients import http_client
from tests.support.opa import opa_binary
from tests.support.proxy import basic, parse_response, proxy_for, raw_connect

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def _connect(world: World, port: int) -> tuple[str, dict[str, str]]:
    """The proxy's answer to alice's CONNECT: ('allowed' or the deny reason, headers)."""
    sock, answer = raw_connect(
        port, f"localhost:{world.origin.port}", basic(world.alice.name, world.alice.token)
    )
    sock.close()
    status, headers, _ = parse_response(answer)
    return ("allowed" if status == 200 else headers["x-egress-reason"]), headers


def test_data_edit_through_bundle_reaches_the_proxy(world: World, tmp_path: Path) -> None:
    data_file = tmp_path / "data.json"
    shutil.copy(world.data_file, data_file)
    server = BundleServer(REPO / "policies", data_file, poll_interval=0.2).start()
    opa = start_bundle_opa(server.url, tmp_path, opa_binary())
    admin = free_port()
    p = proxy_for(world, tmp_path, "--opa-url", opa.url, "--admin-listen", f"127.0.0.1:{admin}")
    try:
        assert httpx.get(f"http://127.0.0.1:{admin}/readyz").status_code == 200
        with http_client(p, world.alice) as c:
            r = c.get(f"{world.origin.url}/api/bundled")
        assert r.status_code == 200
        event = p.event_for(r.headers["x-egress-decision-id"])
        assert event["result"]["revision"] == f"opa:bundles:egress={server.source.bundle.revision}"
        assert _connect(world, p.port)[0] == "allowed"

        data = json.loads(data_file.read_text())
        data["egress"]["killed"][f"{world.alice.user}/{world.alice.name}"] = True
        data_file.write_text(json.dumps(data))
        deadline = time.monotonic() + 20
        while (answer := _connect(world, p.port))[0] == "allowed":
            assert time.monotonic() < deadline, "the edit never reached the proxy"
            time.sleep(0.2)
        assert answer[0] == "agent_killed"
        denied = p.event_for(answer[1]["x-egress-decision-id"])
        assert denied["result"]["revision"] == f"opa:bundles:egress={server.source.bundle.revision}"
        assert denied["result"]["revision"] != event["result"]["revision"]
    finally:
        p.stop()
        opa.stop()
        server.stop()
