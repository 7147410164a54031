"""Every real value this proxy has put on the wire, and where it may have gone.

Scrubbing an agent's answers of its own secrets is not enough: a value one agent stored
upstream (an issue body, a shared document) can be read back by another agent that never
held it. Each value a swap released is remembered here with its secret's host binding, and
every answer from a host that binding admits is scrubbed of it, whoever the reader is (the
reader sees the owner's placeholder, which is inert for anyone else). A rotated-away value
stays remembered too: what was stored before the rotation can still be read after it.

Bounded: the latest ``KEEP`` values per secret. Process memory only: another replica, or this
one after a restart, knows what it released itself (the local store adds every secret it
holds, see ``LocalSecretStore.bound_to``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from egress.secrets.model import SecretRef
from egress.secrets.scrub import WITHHELD, ScrubSet, scrub, scrub_pairs

Pairs = tuple[tuple[str, str], ...]
KEEP = 4  # values per secret: the current one and a few rotated away
ADDRESS_KEEP = 256  # values per upstream address (many agents may share one server)


class Released:
    def __init__(self) -> None:
        self._by_secret: dict[tuple[str, str, str], deque[tuple[SecretRef, str]]] = {}
        self._by_host: dict[str, tuple[tuple[str, str], ...]] = {}  # cache, cleared on record
        # every released value, for the decision log (read by the writer thread: replaced
        # whole, never changed in place)
        self._released: tuple[tuple[str, str], ...] = ()
        self._everything: ScrubSet = scrub_pairs(())
        # (ip, port) a value was sent to -> its (value, placeholder) pairs, oldest first: the
        # same server answers under every name that resolves to it (red team N5)
        self._by_address: dict[tuple[str, int], dict[tuple[str, str], None]] = {}
        self._source: Callable[[], tuple[tuple[str, str], ...]] | None = None
        self._combined: tuple[tuple[Pairs, Pairs] | None, ScrubSet] = (None, scrub_pairs(()))

    def record(self, ref: SecretRef, value: str, address: tuple[str, int] | None = None) -> None:
        if address is not None:
            sent = self._by_address.setdefault(address, {})
            sent.pop((value, ref.placeholder), None)
            sent[(value, ref.placeholder)] = None  # newest last
            while len(sent) > ADDRESS_KEEP:
                del sent[next(iter(sent))]
        key = (ref.user, ref.agent, ref.name)
        kept = self._by_secret.setdefault(key, deque(maxlen=KEEP))
        if any(v == value and r.hosts == ref.hosts for r, v in kept):
            return
        kept.append((ref, value))
        self._by_host.clear()
        self._released = tuple(
            sorted({(v, r.placeholder) for kept in self._by_secret.values() for r, v in kept})
        )
        self._everything = scrub_pairs(self._released)

    def for_answer(self, host: str, address: tuple[str, int] | None) -> tuple[tuple[str, str], ...]:
        """``for_host``, plus every value sent to the address the answer comes from."""
        by_host = self.for_host(host)
        sent = self._by_address.get(address) if address is not None else None
        return by_host + tuple(sent) if sent else by_host

    def also_redact(self, source: Callable[[], tuple[tuple[str, str], ...]]) -> None:
        """More (value, placeholder) pairs to keep out of the log: every secret a store holds,
        so the log is clean from the first event after a restart (nothing released yet)."""
        self._source = source

    def redact(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event with every released (or stored) value replaced by its placeholder, in every
        string it holds: an agent that learnt a value (or holds one) cannot write it into the
        decision log through a field a refusal quotes (method, host, path, error text; red
        team N4). Runs on the log writer's thread."""
        released, extra = self._released, self._source() if self._source else ()
        if extra:
            made_of, combined = self._combined
            # the very tuples it was built from (kept, so their ids cannot be reused)
            if made_of is None or made_of[0] is not released or made_of[1] is not extra:
                combined = scrub_pairs(sorted({*released, *extra}))
                self._combined = ((released, extra), combined)
            pairs = combined
        else:
            pairs = self._everything
        if not pairs or not pairs.detect(orjson.dumps(event)):
            return event  # one search over the whole event first: most hold no value
        clean: dict[str, Any] = _redacted(event, pairs)
        return clean

    def for_host(self, host: str) -> tuple[tuple[str, str], ...]:
        """(value, placeholder) of every released value whose binding admits ``host``."""
        host = host.lower()
        cached = self._by_host.get(host)
        if cached is None:
            cached = tuple(
                (value, ref.placeholder)
                for kept in self._by_secret.values()
                for ref, value in kept
                if ref.admits_host(host)
            )
            self._by_host[host] = cached
        return cached


def others_for_answer(
    store: object, released: Released | None, host: str, address: tuple[str, int] | None
) -> tuple[tuple[str, str], ...]:
    """Other agents' (value, placeholder) pairs an answer from ``host`` (dialled at
    ``address``) may carry: released there by a swap, or bound to ``host`` in a store that
    can list every secret (``bound_to``). One rule for HTTP answers and WebSocket messages."""
    sent = released.for_answer(host, address) if released is not None else ()
    bound_to = getattr(store, "bound_to", None)
    stored: tuple[tuple[str, str], ...] = bound_to(host) if bound_to is not None else ()
    return sent + stored if stored else sent


def _redacted(value: Any, pairs: ScrubSet) -> Any:
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        clean = scrub(raw, pairs)
        if clean is raw or clean == raw:
            return value
        return (WITHHELD if clean == WITHHELD else clean).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _redacted(v, pairs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v, pairs) for v in value]
    return value
