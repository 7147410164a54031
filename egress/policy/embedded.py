"""The embedded engine: the policy compiled by OPA to WebAssembly, run in process.

Cost per decision does not depend on the fleet: each decision is handed only the calling
agent's entry of ``data.egress.agents`` (``slices.py``) and runs in a Wasm instance holding
only the shared data (``wasm_runtime.py``). Decisions run on a pool of worker threads
(``workers``, ``--policy-workers``), each with its own instance; Wasm runs without the GIL, so a
slow decision never holds up another agent's traffic on the event loop. One agent may have at
most ``workers - 1`` decisions on the threads at once (at least one): the rest of its cache
misses wait behind themselves, never in front of another agent's decision.

Hot reload: at most once per ``reload_interval`` seconds (0.25) a decision checks the policy
files and the data file (names, sizes, mtimes). On a change a background thread rebuilds: the
policy is recompiled only if a ``.rego`` file changed, the data is re-cut in a child process
(``data_cutter.py``: no GIL held here), and only the agents whose entry changed lose their
cached decisions (the cache keys on ``cache_tag``). Until the new snapshot is
ready the old one answers; it is swapped in one assignment. A policy that does not compile, or
data that is not JSON, is reported on stderr and the last good snapshot stays in force.

``evaluate`` is the synchronous form (replay, tests): it reloads inline before deciding.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import wasmtime

from egress import reasons
from egress.errors import ConfigError
from egress.policy.data_cutter import cut, shared_cutter
from egress.policy.decision import Decision, decision_from_document, deny
from egress.policy.slices import DataSlices
from egress.policy.wasm_compile import compile_policy, policy_files
from egress.policy.wasm_runtime import WasmInstance, compile_module

ENGINE_NAME = "embedded"
DEFAULT_WORKERS = 2
# Wasm memory only grows: an instance that needed more than this for one decision is dropped
# after it, so one pathological input does not pin the memory for the process's lifetime.
INSTANCE_MEMORY_CAP = 256 * 1024 * 1024

__all__ = ["ENGINE_NAME", "EmbeddedEngine", "policy_files"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One loaded policy and data: swapped whole, never edited."""

    module: wasmtime.Module
    policy_digest: str
    data_digest: str
    slices: DataSlices
    revision: str

    @property
    def instance_key(self) -> tuple[str, str]:
        return (self.policy_digest, self.slices.shared_digest)


@dataclass(slots=True)
class AgentSlots:
    """The decisions one agent may have on the worker threads at once, and who waits for them."""

    semaphore: asyncio.Semaphore
    users: int = 0


class EmbeddedEngine:
    name = ENGINE_NAME

    def __init__(
        self,
        policy_dir: Path,
        data_file: Path | None,
        *,
        reload_interval: float = 0.25,
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.policy_dir = policy_dir
        self.data_file = data_file
        self.reload_interval = reload_interval
        self.workers = max(0, workers)
        self.reloads = 0
        self.last_error: str | None = None
        self.last_reload_seconds = 0.0
        self.last_changed_agents = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._reloading = False
        self._cuts = 0
        self._token = uuid.uuid4().hex  # the cutter's baseline is this engine's alone
        self._pool: ThreadPoolExecutor | None = None
        # one agent may hold all but one worker: a flood of one agent's cache misses queues
        # behind itself, never in front of another agent's decision
        self._per_agent = max(1, self.workers - 1)
        self._slots: dict[tuple[str, str], AgentSlots] = {}
        self._checked = time.monotonic()
        self._signature = self._current_signature()
        self._snapshot = self._build(None)

    @property
    def revision(self) -> str:
        return self._snapshot.revision

    @property
    def agent_count(self) -> int:
        return self._snapshot.slices.agent_count

    def _current_signature(self) -> tuple[tuple[str, int, int], ...]:
        paths = policy_files(self.policy_dir) if self.policy_dir.is_dir() else []
        if self.data_file is not None:
            paths.append(self.data_file)
        sig = []
        for p in paths:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            sig.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    # -- loading --------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)build policy + data now. On error the previous snapshot stays loaded."""
        self._snapshot = self._build(self._snapshot)

    def _build(self, old: Snapshot | None) -> Snapshot:
        started = time.perf_counter()
        files = policy_files(self.policy_dir) if self.policy_dir.is_dir() else []
        if not files:
            raise ConfigError(f"no .rego policy files under {self.policy_dir}", "policy_missing")
        policy_digest = _digest_files(self.policy_dir, files)
        if old is not None and old.policy_digest == policy_digest:
            module = old.module
        else:
            module = compile_module(compile_policy(self.policy_dir).wasm)
        slices, data_digest, changed = self._cut_data(old)
        if old is None or (policy_digest, slices.shared_digest) != old.instance_key:
            try:
                WasmInstance(module, slices.linked_parts)  # shared data loads, builtins exist
            except Exception:
                self._cuts += 1  # the cutter's baseline moved on without us: next cut in full
                raise
        revision = hashlib.sha256(f"{policy_digest}\0{data_digest}".encode()).hexdigest()[:16]
        self.last_changed_agents = changed
        self.last_reload_seconds = time.perf_counter() - started
        return Snapshot(module, policy_digest, data_digest, slices, "sha256:" + revision)

    def _cut_data(self, old: Snapshot | None) -> tuple[DataSlices, str, int]:
        """(slices, data digest, agents changed). Serving engines cut in the child process
        (``data_cutter``) so a reload holds no GIL here; ``workers=0`` engines cut inline."""
        if self.data_file is None:
            return DataSlices(), "-", 0
        if self.workers == 0:
            delta, _ = cut(self.data_file, None)
        else:
            token = f"{self._token}:{self._cuts}"
            delta = shared_cutter().cut(token, self.data_file)
        if old is not None and delta.data_digest == old.data_digest:
            return old.slices, old.data_digest, 0
        slices = delta.apply(old.slices if old is not None else None)
        changed = delta.changed_count
        if delta.full and old is not None:  # a new child: count against what we had
            changed = slices.changed_agents(old.slices)
        return slices, delta.data_digest, changed

    def maybe_reload(self, *, force: bool = False) -> bool:
        """Rebuild now if the files changed. Returns True when a new snapshot was loaded."""
        signature = self._due_signature(force)
        if signature is None:
            return False
        return self._reload(signature)

    def poll_reload(self) -> None:
        """From the event loop: if the files changed, rebuild on a background thread."""
        signature = self._due_signature(False)
        if signature is None:
            return
        with self._lock:
            if self._reloading:
                return
            self._reloading = True
        threading.Thread(
            target=self._reload, args=(signature,), name="egress-policy-reload", daemon=True
        ).start()

    def _due_signature(self, force: bool) -> tuple[tuple[str, int, int], ...] | None:
        now = time.monotonic()
        if not force and now - self._checked < self.reload_interval:
            return None
        self._checked = now
        signature = self._current_signature()
        if signature == self._signature and not force:
            return None
        return signature

    def _reload(self, signature: tuple[tuple[str, int, int], ...]) -> bool:
        try:
            self._snapshot = self._build(self._snapshot)
        except (ConfigError, OSError) as e:
            self.last_error = str(e)
            print(
                f"egress: policy reload failed, keeping revision {self.revision}: {e}",
                file=sys.stderr,
                flush=True,
            )
            return False
        finally:
            self._signature = signature
            self._reloading = False
        self.last_error = None
        self.reloads += 1
        print(
            f"egress: policy reloaded, revision {self.revision} "
            f"(agents changed: {self.last_changed_agents}, {self.last_reload_seconds:.3f} s)",
            file=sys.stderr,
            flush=True,
        )
        return True

    # -- deciding -------------------------------------------------------------------------------

    def cache_tag(self, policy_input: dict[str, Any]) -> str:
        """What a cached decision for this input depends on: policy, shared data, agent entry."""
        snap = self._snapshot
        user, name = _agent(policy_input)
        agent_digest = snap.slices.entry(user, name)[1]
        return f"{snap.policy_digest[:16]}:{snap.slices.shared_digest}:{agent_digest}"

    def evaluate(self, policy_input: dict[str, Any]) -> Decision:
        """Decide synchronously in the calling thread (reloading inline first)."""
        self.maybe_reload()
        return self._evaluate(policy_input)

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        self.poll_reload()
        if self.workers == 0:
            return self._evaluate(policy_input)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="egress-policy")
        loop = asyncio.get_running_loop()
        agent = _agent(policy_input)
        slots = self._slots.get(agent)
        if slots is None:
            slots = self._slots[agent] = AgentSlots(asyncio.Semaphore(self._per_agent))
        slots.users += 1
        try:
            async with slots.semaphore:
                return await loop.run_in_executor(self._pool, self._evaluate, policy_input)
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._slots[agent]  # no table that grows with the fleet

    def _evaluate(self, policy_input: dict[str, Any]) -> Decision:
        snap = self._snapshot
        started = time.perf_counter()
        try:
            instance = self._instance(snap)
            user, name = _agent(policy_input)
            doc = instance.evaluate(snap.slices.document(user, name), orjson.dumps(policy_input))
            if instance.memory_bytes > INSTANCE_MEMORY_CAP:
                self._local.key = None
        except Exception as e:  # Wasm traps, aborts, bad JSON: fail closed, fresh instance next
            self._local.key = None
            return deny(
                reasons.POLICY_ERROR, type(e).__name__, engine=self.name, revision=snap.revision
            )
        decision = decision_from_document(doc, engine=self.name, revision=snap.revision)
        decision.extra["eval_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return decision

    def _instance(self, snap: Snapshot) -> WasmInstance:
        """This thread's instance for the snapshot's policy and shared data."""
        local = self._local
        if getattr(local, "key", None) != snap.instance_key:
            local.instance = WasmInstance(snap.module, snap.slices.linked_parts)
            local.key = snap.instance_key
        instance: WasmInstance = local.instance
        return instance

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _agent(policy_input: dict[str, Any]) -> tuple[str, str]:
    agent = policy_input.get("agent")
    if not isinstance(agent, dict):
        return "", ""
    user, name = agent.get("user"), agent.get("name")
    return (user if isinstance(user, str) else "", name if isinstance(name, str) else "")


def _digest_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()
