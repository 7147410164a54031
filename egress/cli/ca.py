"""``egress ca init|show``: the platform CA. cryptography is imported only when a command runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_init(a: argparse.Namespace) -> int:
    from egress.proxy import ca

    info = ca.init_ca(Path(a.dir), key_type=a.key_type, rsa_bits=a.rsa_bits, force=a.force)
    print(f"CA certificate: {info.cert_path}")
    print(f"CA key (0600):  {info.key_path}")
    print(f"key type:       {info.key_type}")
    print(f"fingerprint:    SHA256 {info.fingerprint_sha256}")
    return 0


def _cmd_show(a: argparse.Namespace) -> int:
    from egress.proxy import ca

    info = ca.load_ca_info(Path(a.dir))
    print(f"CA certificate: {info.cert_path}")
    print(f"key type:       {info.key_type}")
    print(f"fingerprint:    SHA256 {info.fingerprint_sha256}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    init = sub.add_parser("init", help="generate the platform CA (ECDSA P-256 by default)")
    init.add_argument("--dir", default="certs")
    init.add_argument("--key-type", choices=["ecdsa", "rsa"], default="ecdsa")
    init.add_argument("--rsa-bits", type=int, default=3072)
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    init.set_defaults(func=_cmd_init)
    show = sub.add_parser("show", help="print the CA path and fingerprint")
    show.add_argument("--dir", default="certs")
    show.set_defaults(func=_cmd_show)
