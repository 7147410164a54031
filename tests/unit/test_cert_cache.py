"""The leaf certificate cache: bounded to --cert-cache-size, least recently used evicted, and
installed over the store mitmproxy's tlsconfig builds."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from mitmproxy import certs
from mitmproxy.addons import tlsconfig
from mitmproxy.test import taddons

from egress.proxy.cert_cache import BoundedCertStore, CertCache


def _sans(host: str) -> list[x509.GeneralName]:
    return [x509.DNSName(host)]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ca")
    certs.CertStore.from_store(d, "mitmproxy", 2048)  # writes the CA once for the module
    return d


def test_cap_holds_with_50_hosts(store_dir: Path) -> None:
    store = BoundedCertStore.adopt(certs.CertStore.from_store(store_dir, "mitmproxy", 2048), 10)
    for i in range(50):
        host = f"h{i}.test.example"
        entry = store.get_cert(host, _sans(host))
        assert entry.cert.altnames == x509.GeneralNames(_sans(host))
    assert store.generated() == 10
    generated = [k for k in store.certs if isinstance(k, tuple)]
    assert len(generated) == 10
    assert {k[0] for k in generated} == {f"h{i}.test.example" for i in range(40, 50)}


def test_least_recently_used_is_evicted(store_dir: Path) -> None:
    store = BoundedCertStore.adopt(certs.CertStore.from_store(store_dir, "mitmproxy", 2048), 3)
    first = store.get_cert("a.test", _sans("a.test"))
    store.get_cert("b.test", _sans("b.test"))
    store.get_cert("c.test", _sans("c.test"))
    assert store.get_cert("a.test", _sans("a.test")) is first  # a hit: a is now most recent
    store.get_cert("d.test", _sans("d.test"))  # evicts b, the least recently used
    names = {k[0] for k in store.certs if isinstance(k, tuple)}
    assert names == {"a.test", "c.test", "d.test"}
    assert store.get_cert("a.test", _sans("a.test")) is first
    assert store.get_cert("b.test", _sans("b.test")) is not None  # minted again
    assert store.generated() == 3


def test_loaded_certificates_are_not_evicted(store_dir: Path) -> None:
    store = certs.CertStore.from_store(store_dir, "mitmproxy", 2048)
    custom = store.get_cert("custom.test", _sans("custom.test"))
    store.add_cert(custom, "custom.test")  # as --certs does: a str key
    bounded = BoundedCertStore.adopt(store, 2)
    for i in range(5):
        bounded.get_cert(f"x{i}.test", _sans(f"x{i}.test"))
    assert bounded.certs["custom.test"] is custom
    assert bounded.get_cert("custom.test", _sans("custom.test")) is custom
    assert bounded.generated() == 2


def test_addon_bounds_tlsconfig_store(tmp_path: Path) -> None:
    tls = tlsconfig.TlsConfig()
    with taddons.context(tls, CertCache(7)) as tctx:
        tctx.configure(tls, confdir=str(tmp_path / "a"))
        first = tls.certstore
        tctx.configure(tls, confdir=str(tmp_path / "b"))  # a rebuilt store is bounded again
        assert tls.certstore is not first
        assert isinstance(first, BoundedCertStore)
        assert isinstance(tls.certstore, BoundedCertStore)
        assert tls.certstore.cap == 7


async def test_bounded_in_the_proxy_master(tmp_path: Path) -> None:
    # the proxy's own master: tlsconfig builds its store in ``running``, after configure
    from mitmproxy import hooks, options

    from egress.proxy.server import make_master

    master = make_master(options.Options(confdir=str(tmp_path)))
    master.addons.add(CertCache(5))
    await master.addons.trigger_event(hooks.RunningHook())
    store = master.addons.get("tlsconfig").certstore
    assert isinstance(store, BoundedCertStore)
    assert store.cap == 5
