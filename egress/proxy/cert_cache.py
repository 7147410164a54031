"""A bounded, least-recently-used cache of the leaf certificates the proxy mints.

mitmproxy's ``CertStore`` keeps generated leaves in a dict capped by ``STORE_CAP`` (100), evicted
first-in first-out by rebuilding the whole dict on every eviction. A forward proxy for a fleet
sees many distinct hosts: the cap must be a flag, eviction must keep the hosts in use (LRU), and
it must cost O(1). ``CertCache`` is an addon that, once mitmproxy's ``tlsconfig`` has built its
store, turns that store into a ``BoundedCertStore`` (same object, same certificates, same lookup
rules; only the bookkeeping of generated entries changes).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from mitmproxy import certs, ctx

log = logging.getLogger(__name__)

DEFAULT_SIZE = 1000
_Key = tuple[str | None, x509.GeneralNames]


class BoundedCertStore(certs.CertStore):
    """``CertStore`` whose generated leaves are evicted least recently used beyond ``cap``.

    Only entries the store generated are counted and evicted; certificates loaded from files
    (mitmproxy's ``--certs``) stay, as they do upstream.
    """

    cap: int
    _lru: OrderedDict[_Key, None]
    _pending: _Key | None

    @classmethod
    def adopt(cls, store: certs.CertStore, cap: int) -> BoundedCertStore:
        """Turn ``store`` into a bounded one in place (tlsconfig keeps its reference)."""
        store.__class__ = cls
        assert isinstance(store, BoundedCertStore)
        store.cap = max(1, cap)
        store.STORE_CAP = store.cap
        # generated entries already present (mitmproxy keys them by (cn, sans) tuples)
        store._lru = OrderedDict((k, None) for k in store.certs if isinstance(k, tuple))
        store._pending = None
        store._evict()
        return store

    def get_cert(
        self,
        commonname: str | None,
        sans: Iterable[x509.GeneralName],
        organization: str | None = None,
        crl_url: str | None = None,
    ) -> certs.CertStoreEntry:
        names = _fixed(sans)
        key: _Key = (commonname, names)
        self._pending = key  # expire() below is told the entry, not its key
        try:
            entry = super().get_cert(commonname, names, organization, crl_url)
        finally:
            self._pending = None
        if key in self._lru:  # a hit (or the entry just made): now the most recent
            self._lru.move_to_end(key)
        return entry

    def expire(self, entry: certs.CertStoreEntry) -> None:
        """Called by ``get_cert`` right after it stored a new leaf under ``self._pending``."""
        key = self._pending
        if key is None or self.certs.get(key) is not entry:
            # not reached through our get_cert: find the key the slow way
            found = next(k for k, v in reversed(self.certs.items()) if v is entry)
            assert isinstance(found, tuple)
            key = found
        self._lru[key] = None
        self._evict()

    def _evict(self) -> None:
        while len(self._lru) > self.cap:
            old, _ = self._lru.popitem(last=False)
            self.certs.pop(old, None)

    def generated(self) -> int:
        """How many generated leaves the cache holds now."""
        return len(self._lru)


def _fixed(sans: Iterable[x509.GeneralName]) -> x509.GeneralNames:
    """SANs as mitmproxy's store keys them (a ``GeneralNames``, hashable)."""
    return certs._fix_legacy_sans(sans)


class CertCache:
    """Addon: bound mitmproxy's certificate store to ``size`` generated leaves (LRU)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size

    def running(self) -> None:
        # tlsconfig builds its store in its own running hook (mitmproxy 12), before this one
        self.configure({"confdir"})

    def configure(self, updated: set[str]) -> None:
        # runs after tlsconfig's configure (added after it), which (re)builds the store
        tls: Any = ctx.master.addons.get("tlsconfig")
        store = getattr(tls, "certstore", None)
        if store is not None and not isinstance(store, BoundedCertStore):
            BoundedCertStore.adopt(store, self.size)
