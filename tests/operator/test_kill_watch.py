"""The kill switch end to end in cluster terms: `killSwitch: true` on the Agent resource in a
real kube-apiserver reaches a running proxy (`--kill-watch`) and denies the agent's next
request on an already-open tunnel within a second, and closes a live passthrough tunnel and
the silent connections of a killed agent (WebSocket, idle keep-alive) within a second.

The proxy authenticates with a real service-account token (TokenRequest) of the egress-proxy
ServiceAccount, with exactly the RBAC deploy/kustomize/proxy.yaml grants it.
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import pytest
import yaml

from egress.operator.cluster import KubeCluster
from tests.conftest import World
from tests.operator.test_reconcile import AGENTS
from tests.support.clients import get, open_tunnel, seconds_until_denied
from tests.support.kube import KubeServer
from tests.support.liveconns import (
    connection_events,
    data_with_rules,
    open_h2_keepalive,
    open_tls_keepalive,
    open_websocket,
    seconds_until_closed,
)
from tests.support.origin import free_port
from tests.support.proxy import (
    basic,
    parse_response,
    proxy_for,
    raw_connect,
    read_http_response,
)
from tests.support.ws_live_origin import start_ws_origin

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def proxy_token(kube: KubeServer, cluster: KubeCluster, tmp_path_factory) -> Path:
    """A token of egress-system/egress-proxy, bound by the manifests' RBAC only."""
    for doc in yaml.safe_load_all((REPO / "deploy/kustomize/proxy.yaml").read_text()):
        if doc["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            if doc["kind"] == "ServiceAccount":
                doc["metadata"]["namespace"] = "egress-system"
            cluster.apply(doc)
    with kube.client() as c:
        r = c.post(
            "/api/v1/namespaces/egress-system/serviceaccounts/egress-proxy/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
        )
        assert r.status_code == 201, r.text
        token = r.json()["status"]["token"]
        # least privilege: it may watch Agents but not read Secrets
        with kube.client(token) as sa:
            assert sa.get(AGENTS).status_code == 200
            assert sa.get("/api/v1/namespaces/egress-system/secrets").status_code == 403
    path = tmp_path_factory.mktemp("sa") / "token"
    path.write_text(token)
    return path


def _set_agent(kube: KubeServer, name: str, kill: bool) -> None:
    body = {
        "apiVersion": "egress.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": name},
        "spec": {
            "owner": "alice@example.com",
            "agent": "triage-bot",
            "image": "acme/agent:1",
            "killSwitch": kill,
        },
    }
    with kube.client() as c:
        r = c.patch(
            f"{AGENTS}/{name}",
            params={"fieldManager": "test", "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
            content=json.dumps(body),
        )
        assert r.status_code in (200, 201), r.text


def _delete_agent(kube: KubeServer, name: str) -> None:
    with kube.client() as c:
        c.delete(f"{AGENTS}/{name}")


def _wait_ready(p, timeout: float = 15.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{p.admin_port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("proxy never ready (kill-switch watch not synced?)")


def _proxy(
    world: World, tmp_path: Path, kube: KubeServer, token: Path, data_file: Path | None = None
):
    admin = free_port()
    p = proxy_for(
        world,
        tmp_path,
        "--kill-watch",
        f"{kube.url},{token},{kube.ca_file}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        data_file=data_file,
        secrets=False,
    )
    p.admin_port = admin
    _wait_ready(p)
    return p


def test_agent_kill_switch_reaches_a_live_tunnel_within_a_second(
    world: World, tmp_path, kube: KubeServer, proxy_token: Path
) -> None:
    _set_agent(kube, "kill-watch-tunnel", kill=False)
    p = _proxy(world, tmp_path, kube, proxy_token)
    try:
        host = f"localhost:{world.origin.port}"
        t = open_tunnel(p, world.alice, host, "localhost")
        assert t.request(get("/api/before", host))[0] == 200
        _set_agent(kube, "kill-watch-tunnel", kill=True)
        elapsed, headers = seconds_until_denied(t, "/api/after", host, time.monotonic())
        assert headers["x-egress-reason"] == "agent_killed"
        assert elapsed < 1.0, elapsed
        # another agent is untouched by alice's kill switch
        bob = open_tunnel(p, world.bob, host, "localhost").request(get("/api/bob", host))
        assert bob[1].get("x-egress-reason") != "agent_killed"
        # the killed agent's open tunnel is closed by the sweeper; resuming is one field, and
        # a new tunnel works again
        t.close()
        _set_agent(kube, "kill-watch-tunnel", kill=False)
        deadline = time.monotonic() + 3
        while True:
            t = open_tunnel(p, world.alice, host, "localhost")
            status = t.request(get("/api/resumed", host))[0]
            t.close()
            if status == 200:
                break
            assert time.monotonic() < deadline, "not resumed"
            time.sleep(0.05)
        events = [e for e in p.events() if e["request"]["path"] == "/api/after"]
        assert events and events[-1]["result"]["reason"] == "agent_killed"
        print(f"kill switch via the API: denied {elapsed * 1000:.0f} ms after the PATCH")
    finally:
        p.stop()
        _delete_agent(kube, "kill-watch-tunnel")


def test_agent_kill_switch_closes_a_passthrough_tunnel(
    world: World, tmp_path, kube: KubeServer, proxy_token: Path
) -> None:
    data = json.loads(world.data_file.read_text())
    data["egress"]["agents"]["alice@example.com"]["triage-bot"]["rules"] = [
        {"id": "blobs", "hosts": ["localhost"], "ports": [world.origin.port], "inspect": False}
    ]
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    _set_agent(kube, "kill-watch-pass", kill=False)
    p = _proxy(world, tmp_path, kube, proxy_token, data_file=data_file)
    try:
        host = f"localhost:{world.origin.port}"
        sock, answer = raw_connect(p.port, host, basic(world.alice.name, world.alice.token))
        assert parse_response(answer)[0] == 200
        ctx = ssl.create_default_context(cafile=str(world.test_ca.cert_path))
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(get("/api/pass", host))
        assert parse_response(read_http_response(tls))[0] == 200
        _set_agent(kube, "kill-watch-pass", kill=True)
        time.sleep(0.5)
        tls.settimeout(3)
        closed = False
        try:
            tls.sendall(get("/api/pass-after", host))
            closed = read_http_response(tls) == b""
        except TimeoutError:
            closed = False  # silence is not a close: the tunnel is still open
        except (OSError, ssl.SSLError):
            closed = True
        assert closed, "passthrough tunnel still relaying after the kill"
        deadline = time.monotonic() + 10
        tunnels: list[dict] = []
        while time.monotonic() < deadline and not tunnels:
            tunnels = [e for e in p.events() if e["kind"] == "tunnel"]
            time.sleep(0.1)
        assert tunnels and tunnels[0]["error"].startswith("agent_killed")
    finally:
        p.stop()
        _delete_agent(kube, "kill-watch-pass")


KILL_OPENERS = {
    "websocket": lambda p, w, a, ws: open_websocket(p, a, ws.port),
    "tls-keepalive": lambda p, w, a, ws: open_tls_keepalive(p, a, w.origin.port),
    "h2-keepalive": lambda p, w, a, ws: open_h2_keepalive(p, a, w.origin.port),
}


@pytest.mark.parametrize("kind", sorted(KILL_OPENERS))
def test_agent_kill_switch_closes_a_silent_connection_within_a_second(
    world: World, tmp_path, kube: KubeServer, proxy_token: Path, kind: str
) -> None:
    """A killed agent that sends nothing more (an open WebSocket, an idle keep-alive tunnel)
    is closed by the sweeper, not left open until its next request or byte."""
    leaf = world.test_ca.issue("ws-kill", ["localhost"], ["127.0.0.1"])
    ws = start_ws_origin(leaf.cert_path, leaf.key_path)
    rules = [{"id": "ws", "hosts": ["localhost"], "ports": [ws.port], "methods": ["GET"]}]
    name = f"kill-watch-silent-{kind}"
    _set_agent(kube, name, kill=False)
    p = _proxy(world, tmp_path, kube, proxy_token, data_with_rules(world, tmp_path, rules))
    try:
        live = KILL_OPENERS[kind](p, world, world.alice, ws)
        other = KILL_OPENERS[kind](p, world, world.bob, ws)
        assert live.probe() and other.probe()
        _set_agent(kube, name, kill=True)
        elapsed = seconds_until_closed(live.sock, limit=3.0)
        assert elapsed is not None, f"{kind}: still open 3 s after the kill"
        assert elapsed < 1.0, elapsed
        assert other.probe(), "another agent's connection was closed by alice's kill switch"
        events = connection_events(p, "agent_killed")
        assert events[0]["agent"]["user"] == "alice@example.com"
        print(f"kill switch closed a silent {kind} after {elapsed * 1000:.0f} ms")
        live.close()
        other.close()
    finally:
        p.stop()
        ws.close()
        _delete_agent(kube, name)
