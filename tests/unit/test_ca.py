from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from egress.errors import ConfigError
from egress.proxy import ca


def test_init_ecdsa_default(tmp_path) -> None:
    info = ca.init_ca(tmp_path)
    assert info.key_type == "ECDSA secp256r1"
    assert (tmp_path / ca.CA_KEY_AND_CERT).stat().st_mode & 0o777 == 0o600
    raw = (tmp_path / ca.CA_KEY_AND_CERT).read_bytes()
    key = serialization.load_pem_private_key(raw, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(info.cert_path.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert info.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert b"PRIVATE KEY" not in info.cert_path.read_bytes()


def test_init_rsa_option(tmp_path) -> None:
    info = ca.init_ca(tmp_path, key_type="rsa", rsa_bits=2048)
    key = serialization.load_pem_private_key((tmp_path / ca.CA_KEY_AND_CERT).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and info.key_type == "RSA 2048"


def test_init_refuses_to_overwrite(tmp_path) -> None:
    first = ca.init_ca(tmp_path)
    with pytest.raises(ConfigError) as e:
        ca.init_ca(tmp_path)
    assert e.value.reason == "ca_exists"
    assert ca.load_ca_info(tmp_path).fingerprint_sha256 == first.fingerprint_sha256
    assert ca.init_ca(tmp_path, force=True).fingerprint_sha256 != first.fingerprint_sha256


def test_load_checks_presence_and_permissions(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        ca.load_ca_info(tmp_path)
    assert e.value.reason == "ca_missing"
    ca.init_ca(tmp_path)
    (tmp_path / ca.CA_KEY_AND_CERT).chmod(0o644)
    with pytest.raises(ConfigError) as e:
        ca.load_ca_info(tmp_path)
    assert e.value.reason == "ca_key_permissions"
