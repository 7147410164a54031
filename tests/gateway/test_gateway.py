"""The LLM gateway over real HTTP: identity, policy, credentials, budgets, streaming, errors."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.gateway.conftest import UPSTREAM_KEY, Gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _post(
    gw: Gateway, key: str, path: str = "/openai/v1/chat/completions", json=None, **kw
) -> httpx.Response:
    return httpx.post(
        gw.url + path,
        json=CHAT if json is None else json,
        headers={"Authorization": f"Bearer {key}", **kw.pop("headers", {})},
        timeout=20,
        **kw,
    )


def test_egress_token_as_api_key(gateway: Gateway) -> None:
    r = _post(gateway, gateway.tokens["alice"])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake model"
    seen = gateway.llm.seen[-1]
    assert seen["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert gateway.tokens["alice"] not in str(seen["headers"])
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["agent"]["user"] == "alice@example.com"
    assert event["labels"]["component"] == "gateway"
    assert event["usage"] == {
        "route": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 12,
        "completion_tokens": 5,
    }
    assert event["secrets"] == ["openai"] and event["result"]["rules"] == ["llm"]
    assert UPSTREAM_KEY not in gateway.log_path.read_text()


def test_service_account_jwt_as_api_key(gateway: Gateway) -> None:
    r = _post(gateway, gateway.sa_token("agents-alice", "triage-bot"))
    assert r.status_code == 200, r.text
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["agent"] == {
        "user": "alice@example.com",
        "name": "triage-bot",
        "namespace": "agents-alice",
    }


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda g: g.sa_token("agents-alice", "triage-bot", audience="someone-else"),
            "credential_invalid",
        ),
        (lambda g: g.sa_token("agents-alice", "triage-bot", expires_in=-120), "credential_invalid"),
        (lambda g: g.sa_token("agents-alice", "triage-bot", key=g.other_key), "credential_invalid"),
        (
            lambda g: g.sa_token("agents-alice", "triage-bot", issuer="https://evil"),
            "credential_invalid",
        ),
        (lambda g: g.sa_token("default", "triage-bot"), "credential_invalid"),
        (lambda g: "egt_not-a-real-token", "credential_invalid"),
        (lambda g: "", "credential_missing"),
    ],
)
def test_bad_credentials_are_401(gateway: Gateway, make, reason: str) -> None:
    before = len(gateway.llm.seen)
    key = make(gateway)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.post(gateway.url + "/openai/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 401
    assert r.json()["reason"] == reason and r.json()["error"]["code"] == reason
    assert len(gateway.llm.seen) == before
    assert gateway.event_for(r.headers["x-egress-decision-id"])["result"]["allow"] is False


def test_client_identity_claims_are_ignored(gateway: Gateway) -> None:
    body = {**CHAT, "user": "bob@example.com"}
    r = _post(
        gateway,
        gateway.tokens["alice"],
        json=body,
        headers={"X-User": "bob@example.com", "X-Agent": "bob", "OpenAI-Organization": "x"},
    )
    assert r.status_code == 200
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["agent"]["user"] == "alice@example.com"
    seen = gateway.llm.seen[-1]["headers"]
    assert "x-user" not in seen and "x-agent" not in seen and "openai-organization" not in seen


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/openai/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, 403, "model_not_allowed"),
        ("/nowhere/v1/chat/completions", CHAT, 404, "route_unknown"),
    ],
)
def test_policy_refusals(gateway: Gateway, path, body, status, reason) -> None:
    before = len(gateway.llm.seen)
    r = _post(gateway, gateway.tokens["alice"], path=path, json=body)
    assert r.status_code == status and r.json()["reason"] == reason
    assert len(gateway.llm.seen) == before


def test_route_not_in_agents_rules(gateway: Gateway) -> None:
    r = _post(
        gateway,
        gateway.tokens["bob"],
        path="/embeddings/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "x"},
    )
    assert r.status_code == 403 and r.json()["reason"] == "route_not_allowed"


def test_missing_upstream_credential_fails_closed(gateway: Gateway) -> None:
    before = len(gateway.llm.seen)
    r = _post(gateway, gateway.tokens["bob"])
    assert r.status_code == 403 and r.json()["reason"] == "secret_unavailable"
    assert len(gateway.llm.seen) == before


def test_requests_per_minute(gateway: Gateway) -> None:
    statuses = [_post(gateway, gateway.tokens["carol"]).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    r = _post(gateway, gateway.tokens["carol"])
    assert r.status_code == 429 and r.json()["reason"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 61


def test_tokens_per_day(gateway: Gateway) -> None:
    first = _post(gateway, gateway.tokens["dan"])  # 17 tokens: over the 10/day budget
    assert first.status_code == 200
    r = _post(gateway, gateway.tokens["dan"])
    assert r.status_code == 429 and r.json()["reason"] == "token_budget_exhausted"
    assert int(r.headers["retry-after"]) >= 1


def test_streaming_passes_chunks_through_and_counts_usage(gateway: Gateway) -> None:
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream(
        "POST",
        gateway.url + "/openai/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {gateway.tokens['alice']}"},
        timeout=20,
    ) as r:
        body = b""
        for chunk in r.iter_raw():
            arrivals.append(time.monotonic() - started)
            body += chunk
        decision_id = r.headers["x-egress-decision-id"]
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    text = body.decode()
    assert "Hello" in text and "[DONE]" in text
    # the first words arrived long before the stream ended: nothing was buffered
    assert arrivals[0] < arrivals[-1] - 0.4
    assert gateway.llm.seen[-1]["body"]["stream_options"] == {"include_usage": True}
    event = gateway.event_for(decision_id)
    assert event["usage"]["prompt_tokens"] == 20 and event["usage"]["completion_tokens"] == 5


def test_upstream_key_echo_is_scrubbed(gateway: Gateway) -> None:
    r = _post(gateway, gateway.tokens["alice"], path="/openai/v1/echo-key", json={**CHAT})
    assert r.status_code == 200
    assert UPSTREAM_KEY not in r.text
    assert UPSTREAM_KEY.encode() not in base64.b64decode(r.json()["b64"] + "==")
    assert "[redacted-by-egress]" in r.json()["you_sent"]


def test_upstream_error_passes_through(gateway: Gateway) -> None:
    r = _post(gateway, gateway.tokens["alice"], path="/openai/v1/fail")
    assert r.status_code == 500
    assert r.json()["error"]["message"] == "upstream exploded"
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["result"]["reason"] == "upstream_error" and event["status"] == 500


def test_upstream_down_is_502(gateway: Gateway) -> None:
    r = _post(gateway, gateway.tokens["alice"], path="/down/v1/chat/completions")
    assert r.status_code == 502 and r.json()["reason"] == "upstream_connect_failed"


def test_models_and_embeddings_routes(gateway: Gateway) -> None:
    key = {"Authorization": f"Bearer {gateway.tokens['alice']}"}
    models = httpx.get(gateway.url + "/openai/v1/models", headers=key)
    assert models.status_code == 200 and models.json()["data"][0]["id"] == "gpt-4o-mini"
    emb = _post(
        gateway,
        gateway.tokens["alice"],
        path="/embeddings/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "x"},
    )
    assert emb.status_code == 200


def test_metrics_attribute_tokens(gateway: Gateway) -> None:
    _post(gateway, gateway.tokens["alice"])
    time.sleep(0.2)
    text = httpx.get(gateway.admin + "/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith(
            'egress_gateway_tokens_total{agent="alice@example.com/triage-bot",route="openai",'
            'kind="completion"}'
        )
    )
    assert int(line.rsplit(" ", 1)[1]) >= 5
    assert httpx.get(gateway.admin + "/readyz").status_code == 200


def test_gateway_log_is_keyed_and_verifies_with_its_key(gateway: Gateway) -> None:
    """The gateway's chain carries an HMAC like the proxy's: `logs verify --key-file` proves
    it intact, the same log checked with another key is not, and an edited line is found."""
    import subprocess
    import sys

    r = _post(gateway, gateway.tokens["alice"])
    event = gateway.event_for(r.headers["x-egress-decision-id"])
    assert event["mac"] and len(event["mac"]) == 64
    key_file = gateway.log_path.parent / "state" / "gateway-log.key"
    assert key_file.stat().st_mode & 0o777 == 0o600

    def verify(path, key=key_file) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "egress", "logs", "verify", str(path), "--key-file", str(key)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    deadline = time.monotonic() + 5  # the seal follows the last line within a second
    while (ok := verify(gateway.log_path)).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    seal = gateway.log_path.with_name(gateway.log_path.name + ".seal")
    (forged_dir := gateway.log_path.parent / "forged").mkdir(exist_ok=True)
    (forged_dir / seal.name).write_bytes(seal.read_bytes())
    lines = gateway.log_path.read_bytes().splitlines(keepends=True)
    forged = forged_dir / gateway.log_path.name
    forged.write_bytes(b"".join(lines).replace(b'"alice@example.com"', b'"mallory@example.com"', 1))
    bad = verify(forged)
    assert bad.returncode != 0, bad.stdout
    other_key = forged_dir / "other.key"
    other_key.write_text("ab" * 32 + "\n")
    wrong = verify(gateway.log_path, other_key)
    assert wrong.returncode != 0, wrong.stdout
