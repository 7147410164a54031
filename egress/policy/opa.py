"""The OPA engine: asks a real OPA server ``POST /v1/data/egress/decision``.

A pooled ``httpx.AsyncClient`` keeps connections to OPA alive (one TCP handshake per pool slot,
not per decision) and bounds concurrency. Every failure class becomes a deny with its own
reason: refused/reset -> policy_error, timeout -> policy_timeout, non-200 -> policy_error,
``{}`` (undefined) -> policy_undefined, bad JSON or types -> policy_malformed.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from egress import reasons
from egress.policy.decision import DECISION_PATH, Decision, decision_from_document, deny

ENGINE_NAME = "opa"


class OpaEngine:
    name = ENGINE_NAME

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        max_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/v1/data/" + DECISION_PATH
        self.revision = "opa:" + url
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        started = time.perf_counter()
        try:
            resp = await self._client.post(
                self.url,
                content=orjson.dumps({"input": policy_input}),
                headers={"content-type": "application/json"},
            )
        except httpx.TimeoutException:
            return deny(
                reasons.POLICY_TIMEOUT,
                "OPA did not answer in time",
                engine=self.name,
                revision=self.revision,
            )
        except httpx.HTTPError as e:
            return deny(
                reasons.POLICY_ERROR,
                f"OPA unreachable: {type(e).__name__}",
                engine=self.name,
                revision=self.revision,
            )
        if resp.status_code != 200:
            return deny(
                reasons.POLICY_ERROR,
                f"OPA answered HTTP {resp.status_code}",
                engine=self.name,
                revision=self.revision,
            )
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            return deny(
                reasons.POLICY_MALFORMED,
                "OPA answer is not JSON",
                engine=self.name,
                revision=self.revision,
            )
        if not isinstance(body, dict):
            return deny(
                reasons.POLICY_MALFORMED,
                "OPA answer is not an object",
                engine=self.name,
                revision=self.revision,
            )
        decision = decision_from_document(
            body.get("result"), engine=self.name, revision=self.revision
        )
        decision.extra["eval_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return decision

    async def close(self) -> None:
        await self._client.aclose()
