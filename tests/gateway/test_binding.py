"""The gateway honours a key's host binding and its clear-text rule (issue 13, items 10 and 9).

Each route's upstream is the fake LLM at 127.0.0.1 over plain http. A key bound to another host
(by name, by a near address, by globs that do not match) is never sent: 403
``secret_host_not_bound``, nothing reaches the upstream, and the refusal has its event. A key
bound right but not allowed over plain http is refused with ``secret_plaintext_refused``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import BINDING_KEYS, UPSTREAM_KEY, Gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
REFUSED = {
    "other-host": "secret_host_not_bound",
    "by-name": "secret_host_not_bound",
    "near-ip": "secret_host_not_bound",
    "deep-glob": "secret_host_not_bound",
    "label-glob": "secret_host_not_bound",
    "cleartext": "secret_plaintext_refused",
}


def _chat(gw: Gateway, route: str, *, stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/{route}/v1/chat/completions",
        json={**CHAT, "stream": stream},
        headers={"Authorization": f"Bearer {gw.tokens['alice']}"},
        timeout=20,
    )


def test_every_binding_case_is_covered() -> None:
    assert {name for name, _, _ in BINDING_KEYS} == set(REFUSED) | {"glob-ok"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_key_not_admitted_for_route_fails_closed(gateway: Gateway, name: str, stream) -> None:
    before = len(gateway.llm.seen)
    r = _chat(gateway, f"bind-{name}", stream=stream)
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == REFUSED[name] == r.headers["x-egress-reason"]
    assert len(gateway.llm.seen) == before  # the key went nowhere
    assert UPSTREAM_KEY not in r.text
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["result"]["allow"] is False and event["result"]["reason"] == REFUSED[name]
    assert event["status"] == 403
    assert event["request"]["client"].startswith("127.0.0.1:")  # who asked, for the audit


def test_key_whose_binding_admits_the_route_is_sent(gateway: Gateway) -> None:
    r = _chat(gateway, "bind-glob-ok")
    assert r.status_code == 200, r.text
    assert gateway.llm.seen[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["secrets"] == ["glob-ok"] and event["result"]["allow"] is True
