"""The one rule that turns placeholders into real values, for HTTP requests and WebSocket
messages alike.

A placeholder becomes its real value only when (a) it is the calling agent's own, (b) the
decision listed its secret, (c) the secret's own host binding admits the destination and (d)
the connection is encrypted, unless the secret itself allows clear text. The first check that
fails names the refusal; values are read from the store only after every placeholder passed,
so a refused request never had a real value in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from egress import reasons
from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.policy import Decision
from egress.secrets.model import SecretRef, SecretStore
from egress.secrets.released import Released


class SwapRefused(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


async def approve(
    store: SecretStore,
    who: Identity,
    cores: Iterable[str],
    decision: Decision,
    *,
    host: str,
    encrypted: bool,
    scheme: str,
    released: Released | None = None,
    address: tuple[str, int] | None = None,
) -> tuple[list[SecretRef], list[tuple[str, str]]]:
    """The approved secrets and their (real value, placeholder) pairs, or ``SwapRefused``."""
    refs: list[SecretRef] = []
    for core in sorted(set(cores)):
        try:
            ref = await store.lookup(who, core)
        except SecretStoreError as e:
            raise SwapRefused(reasons.SECRET_UNAVAILABLE, "secret store unavailable") from e
        if ref is None or not ref.owned_by(who):
            raise SwapRefused(reasons.PLACEHOLDER_UNKNOWN)
        if ref.name not in decision.secrets:
            raise SwapRefused(
                reasons.SECRET_NOT_ALLOWED,
                f"policy does not allow secret {ref.name!r} for this request",
            )
        if not ref.admits_host(host):
            raise SwapRefused(
                reasons.SECRET_HOST_NOT_BOUND,
                f"secret {ref.name!r} is not bound to host {host!r}",
            )
        if not encrypted and not ref.allow_plaintext:
            # anyone on the path would read it; only the secret's owner can accept that
            raise SwapRefused(
                reasons.SECRET_PLAINTEXT_REFUSED,
                f"secret {ref.name!r} may not travel over plain {scheme}",
            )
        refs.append(ref)
    pairs: list[tuple[str, str]] = []
    for ref in refs:
        try:
            value = (await store.value(ref)).reveal()
        except SecretStoreError as e:
            raise SwapRefused(reasons.SECRET_UNAVAILABLE, f"secret {ref.name!r} unavailable") from e
        pairs.append((value, ref.placeholder))
    if released is not None:  # about to go on the wire: answers from where it may go scrub it
        for ref, (value, _) in zip(refs, pairs, strict=True):
            released.record(ref, value, address)
    return refs, pairs
