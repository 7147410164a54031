"""The OPA engine: asks a real OPA server ``POST /v1/data/egress/decision``.

Client choice, measured (``bench/opa_clients.py``, same OPA server, same input, 3 rounds):
opa-python-client's async client (aiohttp, one pooled session) answered in 0.31 ms per
sequential decision and 5,550 decisions/s at concurrency 16, against 0.67 ms and 959/s for a
pooled httpx client. So the hot path uses opa-python-client, with its retries turned off
(a retry with back-off would blow the decision timeout; failing closed is the answer).

Fail closed on every error class, each with its own reason: refused/reset -> policy_error,
timeout -> policy_timeout, non-200 -> policy_error, ``{}`` (undefined) -> policy_undefined,
bad JSON or wrong types -> policy_malformed. Concurrency is bounded by a semaphore; a decision
waiting for a slot counts against the same timeout.

Cache invalidation: ``revision`` keys the decision cache and is polled every
``revision_interval`` seconds from something small, never the data itself (a full
``GET /v1/data`` of 20,000 agents, 9.4 MB, took longer than the timeout):

1. bundles: the manifest revisions OPA reports under ``GET /v1/data/system/bundles`` (a content
   hash when built by ``egress policy bundle``), one small request per poll;
2. else the data publisher's revision document ``data.egress.revision`` (any JSON value it bumps
   on every data change) plus a hash of ``GET /v1/policies``;
3. else nothing tells a data change apart: ``cacheable`` turns False (``CachedEngine`` then asks
   OPA every time) and stderr says so once. Bundles configured but not yet activated give an
   ``unknown`` revision (not ready, not cached) and no warning.

When OPA cannot be reached (poll or query failure) the revision changes at once, so a decision
cache keyed on it can never answer from before the outage. ``start`` makes the same few small
requests, so readiness does not depend on the size of the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from opa_client.opa_async import AsyncOpaClient

from egress import reasons
from egress.errors import ConfigError
from egress.policy.decision import DECISION_PATH, Decision, decision_from_document, deny

ENGINE_NAME = "opa"
BUNDLES_PATH = "/v1/data/system/bundles"
REVISION_DOC_PATH = "/v1/data/egress/revision"
NO_REVISION_WARNING = (
    "egress: OPA reports no bundle revision and no data.egress.revision: decisions are not "
    "cached, each one asks OPA (serve policy as a bundle or publish data.egress.revision)"
)


class _Unavailable(Exception):
    """OPA answered the revision poll with something other than 200 + a JSON object."""


async def _result(c: httpx.AsyncClient, path: str) -> Any:
    """``result`` of a Data API read (None when undefined)."""
    r = await c.get(path)
    if r.status_code != 200:
        raise _Unavailable(f"{path}: HTTP {r.status_code}")
    body = r.json()
    if not isinstance(body, dict):
        raise _Unavailable(f"{path}: not an object")
    return body.get("result")


def _bundle_revision(bundles: Any) -> str | None:
    """``opa:bundles:name=revision,...`` when every activated bundle names its content."""
    if not isinstance(bundles, dict) or not bundles:
        return None
    parts = []
    for name, info in sorted(bundles.items()):
        info = info if isinstance(info, dict) else {}
        manifest = info.get("manifest")
        revision = manifest.get("revision") if isinstance(manifest, dict) else None
        revision = revision or info.get("etag")  # a bundle built without a revision: its ETag
        if not isinstance(revision, str) or not revision:
            return None  # one anonymous bundle: its changes are invisible
        parts.append(f"{name}={revision}")
    return "opa:bundles:" + ",".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


class OpaEngine:
    name = ENGINE_NAME

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        max_concurrency: int = 64,
        revision_interval: float = 1.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--opa-url must be http(s)://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.revision_interval = revision_interval
        self.revision = "opa:unknown"
        self.cacheable = True  # False: no revision covers data changes (see the docstring)
        self._warned = False
        self._http: httpx.AsyncClient | None = None
        self._client = AsyncOpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            retries=0,
            timeout=timeout,
        )
        self._started = False
        self._slots = asyncio.Semaphore(max_concurrency)
        self._poller: asyncio.Task[None] | None = None
        self._outages = 0

    async def start(self) -> None:
        """Open the session and learn the revision (idempotent; readiness depends on it)."""
        if not self._started:
            await self._start()

    async def _start(self) -> None:
        self._started = True
        await self._client._init_session()
        await self._refresh_revision()
        self._poller = asyncio.create_task(self._poll(), name="egress-opa-revision")

    def _mark_unavailable(self) -> None:
        self._outages += 1
        self.revision = f"opa:unavailable:{self._outages}"

    async def _refresh_revision(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.url, timeout=self.timeout)
        try:
            revision, cacheable = await self._read_revision(self._http)
        except (httpx.HTTPError, _Unavailable, ValueError):
            self._mark_unavailable()
            return
        self.revision, self.cacheable = revision, cacheable
        if not cacheable and "unknown" not in revision and not self._warned:
            self._warned = True
            print(NO_REVISION_WARNING, file=sys.stderr, flush=True)

    async def _read_revision(self, c: httpx.AsyncClient) -> tuple[str, bool]:
        """(revision, cacheable), from the cheapest source OPA has; see the module docstring."""
        by_bundles = _bundle_revision(await _result(c, BUNDLES_PATH))
        if by_bundles is not None:
            return by_bundles, True
        document = await _result(c, REVISION_DOC_PATH)
        policies = await c.get("/v1/policies")
        if policies.status_code != 200:
            raise _Unavailable(f"/v1/policies: HTTP {policies.status_code}")
        modules = hashlib.sha256(policies.content).hexdigest()[:16]
        if document is not None:
            return f"opa:data:{_short(document)}:policies:{modules}", True
        if (await c.get("/health", params={"bundles": ""})).status_code != 200:
            return "opa:unknown:bundles-not-activated", False  # configured, still loading
        return f"opa:policies:{modules}:data-unversioned", False

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.revision_interval)
            await self._refresh_revision()

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        if not self._started:
            await self._start()
        started = time.perf_counter()
        revision = self.revision
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                body = await self._client.query_rule(policy_input, DECISION_PATH)
        except TimeoutError:
            self._mark_unavailable()
            return deny(
                reasons.POLICY_TIMEOUT,
                "OPA did not answer in time",
                engine=self.name,
                revision=revision,
            )
        except aiohttp.ClientResponseError as e:
            self._mark_unavailable()
            return deny(
                reasons.POLICY_ERROR,
                f"OPA answered HTTP {e.status}",
                engine=self.name,
                revision=revision,
            )
        except (aiohttp.ContentTypeError, json.JSONDecodeError, ValueError):
            return deny(
                reasons.POLICY_MALFORMED,
                "OPA answer is not JSON",
                engine=self.name,
                revision=revision,
            )
        except (aiohttp.ClientError, OSError) as e:
            self._mark_unavailable()
            return deny(
                reasons.POLICY_ERROR,
                f"OPA unreachable: {type(e).__name__}",
                engine=self.name,
                revision=revision,
            )
        if not isinstance(body, dict):
            return deny(
                reasons.POLICY_MALFORMED,
                "OPA answer is not an object",
                engine=self.name,
                revision=revision,
            )
        decision = decision_from_document(body.get("result"), engine=self.name, revision=revision)
        decision.extra["eval_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return decision

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._http is not None:
            await self._http.aclose()
        await self._client.close_connection()
