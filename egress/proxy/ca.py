"""The platform CA: generated on the machine that runs the proxy, never committed.

ECDSA P-256 by default: signatures are cheaper than RSA for every leaf certificate minted on a
new connection, and every current TLS client accepts them. mitmproxy signs leaf certificates
with the CA key and gives them the CA's public key, so the key type chosen here is the leaf's.
Files follow mitmproxy's names so its certificate store loads them unchanged.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from egress.errors import ConfigError
from egress.fileio import atomic_write

CA_KEY_AND_CERT = "mitmproxy-ca.pem"
CA_CERT = "mitmproxy-ca-cert.pem"
_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class CAInfo:
    cert_path: Path
    key_path: Path
    fingerprint_sha256: str
    key_type: str


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _key_type(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def init_ca(
    directory: Path,
    *,
    key_type: str = "ecdsa",
    rsa_bits: int = 3072,
    common_name: str = "egress platform CA",
    force: bool = False,
) -> CAInfo:
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / CA_KEY_AND_CERT
    cert_path = directory / CA_CERT
    if key_path.exists() and not force:
        raise ConfigError(
            f"a CA already exists at {key_path}; pass --force to replace it "
            "(every agent must then trust the new certificate)",
            reason="ca_exists",
        )
    key = _new_key(key_type, rsa_bits)
    cert = _self_signed(key, common_name)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    atomic_write(key_path, key_pem + cert_pem, 0o600)
    atomic_write(cert_path, cert_pem, 0o644)
    return CAInfo(cert_path, key_path, fingerprint(cert), _key_type(key))


def _new_key(key_type: str, rsa_bits: int) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    raise ConfigError(f"unknown key type {key_type!r} (ecdsa or rsa)")


def _self_signed(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str
) -> x509.Certificate:
    """A CA certificate that may sign leaf certificates only (path length 0)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "egress"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def load_ca_info(directory: Path) -> CAInfo:
    key_path = directory / CA_KEY_AND_CERT
    cert_path = directory / CA_CERT
    if not key_path.exists():
        raise ConfigError(
            f"no platform CA in {directory}: run `egress ca init --dir {directory}` first",
            reason="ca_missing",
        )
    if key_path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{key_path} is readable by group/others; run `chmod 600 {key_path}`",
            reason="ca_key_permissions",
        )
    raw = key_path.read_bytes()
    try:
        cert = x509.load_pem_x509_certificates(raw)[0]
        key = serialization.load_pem_private_key(raw, None)
    except ValueError as e:
        raise ConfigError(f"{key_path} is not a PEM key + certificate: {e}", "ca_invalid") from e
    if key.public_key() != cert.public_key():
        raise ConfigError(f"{key_path}: key does not match certificate", reason="ca_invalid")
    if not cert_path.exists():
        atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return CAInfo(cert_path, key_path, fingerprint(cert), _key_type(key))
