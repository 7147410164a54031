"""The shared builders in egress.testing: the policy data document and the world on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from egress.identity.credentials import IdentitiesFile
from egress.secrets.local import LocalSecretStore
from egress.testing.net import free_port, wait_port
from egress.testing.policy import policy_doc
from egress.testing.world import world

RULE = {"id": "r", "hosts": ["localhost"]}


def test_policy_doc_shape() -> None:
    doc = policy_doc(
        {"a@x.com/bot": [RULE], "a@x.com/other": [], "b@x.com/bot": [RULE, RULE]},
        killed=["b@x.com/bot"],
    )
    assert doc == {
        "egress": {
            "agents": {
                "a@x.com": {"bot": {"rules": [RULE]}, "other": {"rules": []}},
                "b@x.com": {"bot": {"rules": [RULE, RULE]}},
            },
            "killed": {"b@x.com/bot": True},
        }
    }


def test_policy_doc_always_has_a_killed_map_and_copies_rules() -> None:
    rule = dict(RULE)
    doc = policy_doc({"a@x.com/bot": [rule]})
    assert doc["egress"]["killed"] == {}
    doc["egress"]["agents"]["a@x.com"]["bot"]["rules"][0]["id"] = "changed"
    assert rule["id"] == "r"


@pytest.mark.parametrize("key", ["a@x.com", "/bot", "a@x.com/", ""])
def test_policy_doc_rejects_keys_that_are_not_user_slash_agent(key: str) -> None:
    with pytest.raises(ValueError, match="user/agent"):
        policy_doc({key: [RULE]})


def test_world_lays_out_cas_state_agents_secrets_and_policy(tmp_path: Path) -> None:
    w = world(tmp_path / "w", origin_ca="my-ca")
    assert w.test_ca.cert_path.name == "my-ca.pem" and w.leaf.cert_path.exists()
    assert (w.ca_dir / "mitmproxy-ca-cert.pem").exists()
    token = w.agent("a@x.com", "bot", namespace="ns-a")
    found = IdentitiesFile(w.state_dir / "identities.json").verify("bot", token)
    assert found.user == "a@x.com" and found.namespace == "ns-a"
    ph = w.secret("a@x.com", "bot", "gh", "value-1", ["localhost"], prefix="ghp_")
    assert ph.startswith("ghp_")
    store = LocalSecretStore.open(w.state_dir / "secrets.enc", w.state_dir / "secrets.key")
    assert [r.placeholder for r in store.list()] == [ph]
    path = w.policy({"a@x.com/bot": [RULE]}, killed=["a@x.com/bot"], name="p.json")
    assert path == w.root / "p.json"
    assert json.loads(path.read_text()) == policy_doc({"a@x.com/bot": [RULE]}, ["a@x.com/bot"])


def test_free_port_is_free_and_wait_port_sees_a_listener() -> None:
    async def listen() -> None:
        port = free_port()
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        async with server:
            await asyncio.to_thread(wait_port, port, 5)

    asyncio.run(listen())
    with pytest.raises(RuntimeError, match="never opened"):
        wait_port(free_port(), 0.2)
