"""Policy data cut into the calling agent's slice and the part every decision shares.

``data.egress.agents[user][name]`` is the only part of the data that grows with the fleet. The
embedded engine hands each decision only the calling agent's entry of it; everything else is
``shared`` (parsed once per Wasm instance). So for the embedded engine ``data.egress.agents``
holds one agent, the caller: a policy that reads other agents' entries must run on the OPA
server (``--opa-url``), which always sees all the data.

Each agent's entry is kept as its JSON bytes with a digest: a reload compares digests to know
which agents changed, and the decision cache keys on (shared digest, agent digest), so an edit
to one agent never invalidates another agent's cached decisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from egress.errors import ConfigError

Part = tuple[tuple[str, ...], bytes]
_EMPTY = (b"", "-")
# Shared data up to this size is written into each decision's document (one parse, a few
# microseconds); above it, it is parsed once per instance and linked in (opa_value_add_path).
INLINE_SHARED_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DataSlices:
    """The data document as the engine uses it: shared parts plus one JSON entry per agent."""

    parts: tuple[Part, ...] = ()
    shared_digest: str = "-"
    sliced: bool = False
    agents: dict[str, dict[str, tuple[bytes, str]]] = field(default_factory=dict)

    @property
    def inline(self) -> bool:
        return sum(len(v) for _, v in self.parts) <= INLINE_SHARED_BYTES

    @property
    def linked_parts(self) -> tuple[Part, ...]:
        """The parts a Wasm instance parses once and links into every decision's document."""
        return () if self.inline else self.parts

    @property
    def agent_count(self) -> int:
        return sum(len(v) for v in self.agents.values())

    def entry(self, user: str, name: str) -> tuple[bytes, str]:
        """(JSON of the agent's entry, its digest), or (b"", "-") when the data has none."""
        return self.agents.get(user, {}).get(name, _EMPTY)

    def document(self, user: str, name: str) -> bytes:
        """The per-decision data document (the linked parts are added to it in Wasm)."""
        inline = self.inline
        top = [_member(p[0], v) for p, v in self.parts if len(p) == 1] if inline else []
        if self.sliced:
            raw, _ = self.entry(user, name)
            egress = [_member(p[1], v) for p, v in self.parts if len(p) == 2] if inline else []
            slice_ = (
                b"{%s:{%s:%s}}" % (orjson.dumps(user), orjson.dumps(name), raw) if raw else b"{}"
            )
            egress.append(b'"agents":' + slice_)
            top.append(b'"egress":{' + b",".join(egress) + b"}")
        return b"{" + b",".join(top) + b"}"

    def changed_agents(self, old: DataSlices) -> int:
        """How many agents' entries differ from ``old`` (added, removed or edited)."""
        changed = 0
        for user, names in self.agents.items():
            before = old.agents.get(user, {})
            changed += sum(1 for n, (_, d) in names.items() if before.get(n, _EMPTY)[1] != d)
            changed += sum(1 for n in before if n not in names)
        changed += sum(len(v) for u, v in old.agents.items() if u not in self.agents)
        return changed


def slice_data(raw: bytes | None, *, source: str = "data") -> DataSlices:
    """Cut a data file's bytes; ConfigError ``policy_data_invalid`` if it is not a JSON object."""
    if raw is None:
        return DataSlices()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{source}: invalid JSON: {e}", "policy_data_invalid") from e
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{source}: the data document must be a JSON object", "policy_data_invalid"
        )
    egress = doc.get("egress")
    agents = egress.get("agents") if isinstance(egress, dict) else None
    if not isinstance(egress, dict) or not isinstance(agents, dict):
        whole: tuple[Part, ...] = tuple(((key,), orjson.dumps(value)) for key, value in doc.items())
        return DataSlices(parts=whole, shared_digest=_digest_parts(whole))
    parts: tuple[Part, ...] = tuple(
        ((key,), orjson.dumps(value)) for key, value in doc.items() if key != "egress"
    )
    parts += tuple(
        (("egress", key), orjson.dumps(value)) for key, value in egress.items() if key != "agents"
    )
    return DataSlices(
        parts=parts, shared_digest=_digest_parts(parts), sliced=True, agents=_entries(agents)
    )


def _member(key: str, value: bytes) -> bytes:
    return orjson.dumps(key) + b":" + value


def _entries(agents: dict[str, object]) -> dict[str, dict[str, tuple[bytes, str]]]:
    out: dict[str, dict[str, tuple[bytes, str]]] = {}
    for user, names in agents.items():
        if not isinstance(names, dict):
            continue  # not an object of agents: data.egress.agents[user][name] is undefined
        row = out.setdefault(user, {})
        for name, entry in names.items():
            raw = orjson.dumps(entry)
            row[name] = (raw, hashlib.blake2b(raw, digest_size=8).hexdigest())
    return out


def _digest_parts(parts: tuple[Part, ...]) -> str:
    digest = hashlib.blake2b(digest_size=8)
    for path, value in parts:
        digest.update(orjson.dumps(list(path)) + b"\0" + value + b"\0")
    return digest.hexdigest()
