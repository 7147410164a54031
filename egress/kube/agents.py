"""The kill switch as pushed by the Kubernetes API: a watch on ``Agent`` resources.

Policy data carries kills too (``data.egress.killed``), but in a cluster it reaches the proxy
through a mounted ConfigMap, which the kubelet refreshes only every minute or so. With
``--kill-watch`` each proxy process follows the Agents itself (LIST, then WATCH from that
resourceVersion), so ``killSwitch: true`` is known within the API's event latency:

- the Agent resource itself, spelled once: ``GROUP``, ``VERSION``, ``PLURAL``, ``KIND``,
  ``AGENTS_PATH`` and the spec field names, used by the operator and the proxy alike;
- ``KillSwitchWatch`` keeps a ``KillSet`` in step with the API, re-listing after any error or
  an expired resourceVersion (410); a set once learned is kept while the API is unreachable
  (the policy data still carries the kills), never cleared by an error.

``KillSet`` and ``KillSwitchEngine`` are policy decisions, not Kubernetes: they live in
``egress.policy.kill``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from pathlib import Path
from typing import Any

import httpx
import orjson

from egress.policy.kill import KillSet

log = logging.getLogger("egress.kill_switch")

# The Agent custom resource (deploy/crd/agent.yaml; a test holds the two equal)
GROUP = "egress.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Agent"
PLURAL = "agents"
AGENTS_PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"

# spec field names (the CRD's schema; ``AgentSpec.from_resource`` reads the rest)
SPEC_OWNER = "owner"
SPEC_AGENT = "agent"
SPEC_KILL_SWITCH = "killSwitch"
SPEC_STOPPED = "stopped"
SPEC_IDLE_TIMEOUT = "idleTimeoutMinutes"

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _key(resource: dict[str, Any]) -> tuple[str, str | None]:
    """(object name, ``user/agent`` when its kill switch is on, else None)."""
    spec = resource.get("spec") or {}
    name = str((resource.get("metadata") or {}).get("name", ""))
    owner, agent = spec.get(SPEC_OWNER), spec.get(SPEC_AGENT)
    if spec.get(SPEC_KILL_SWITCH) is True and owner and agent:
        return name, f"{owner}/{agent}"
    return name, None


class KillSwitchWatch:
    def __init__(
        self,
        api_url: str,
        token_file: Path,
        ca_file: Path | None,
        kills: KillSet,
        *,
        retry_seconds: float = 0.5,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        self.kills = kills
        self.retry_seconds = retry_seconds
        self.synced = asyncio.Event()  # set after the first successful LIST
        self._killed_by_name: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_flag(cls, value: str, kills: KillSet) -> KillSwitchWatch:
        """``in-cluster`` (service-account token and CA, KUBERNETES_SERVICE_HOST), or
        ``URL,TOKEN_FILE[,CA_FILE]``."""
        if value == "in-cluster":
            host = os.environ.get("KUBERNETES_SERVICE_HOST")
            port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ValueError("--kill-watch in-cluster: KUBERNETES_SERVICE_HOST is not set")
            if ":" in host:
                host = f"[{host}]"
            return cls(f"https://{host}:{port}", SA_DIR / "token", SA_DIR / "ca.crt", kills)
        parts = value.split(",")
        if len(parts) not in (2, 3) or not parts[0].startswith("https://"):
            raise ValueError("--kill-watch takes in-cluster or https://API,TOKEN_FILE[,CA_FILE]")
        ca = Path(parts[2]) if len(parts) == 3 else None
        return cls(parts[0], Path(parts[1]), ca, kills)

    def _client(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        token = self.token_file.read_text().strip()  # re-read: projected tokens rotate
        return httpx.AsyncClient(
            base_url=self.api_url,
            verify=verify,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10.0, read=None),
        )

    def _publish(self) -> None:
        self.kills.replace(set(self._killed_by_name.values()))

    def _apply(self, resource: dict[str, Any], deleted: bool = False) -> None:
        name, key = _key(resource)
        if key is None or deleted:
            self._killed_by_name.pop(name, None)
        else:
            self._killed_by_name[name] = key
        self._publish()

    async def _list(self, client: httpx.AsyncClient) -> str:
        r = await client.get(AGENTS_PATH)
        r.raise_for_status()
        doc = r.json()
        self._killed_by_name = {}
        for item in doc.get("items", []):
            name, key = _key(item)
            if key is not None:
                self._killed_by_name[name] = key
        self._publish()
        self.synced.set()
        return str(doc["metadata"]["resourceVersion"])

    async def _watch(self, client: httpx.AsyncClient, version: str) -> None:
        params = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"}
        async with client.stream("GET", AGENTS_PATH, params=params) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line:
                    continue
                event = orjson.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # e.g. 410 Gone: the version expired, list again
                    return
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(obj, deleted=kind == "DELETED")

    async def run(self) -> None:
        while True:
            try:
                async with self._client() as client:
                    version = await self._list(client)
                    await self._watch(client, version)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("kill-switch watch: %s: %s", type(e).__name__, e)
            await asyncio.sleep(self.retry_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="kill-switch-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
