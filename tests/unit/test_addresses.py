"""IP literals in every textual form and the address classification (no sockets)."""

from __future__ import annotations

import ipaddress

import pytest

from egress.destination.addresses import AddressPolicy, parse_ip_literal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.169.254", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("127.0.0.1.nip.io", None),
        ("0x", None),
        ("", None),
        ("12a", None),
    ],
)
def test_parse_ip_literal(text: str, expected: str | None) -> None:
    got = parse_ip_literal(text)
    assert (str(got) if got is not None else None) == expected


DENIED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::127.0.0.1",  # IPv4-compatible
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", DENIED)
def test_private_and_special_addresses_denied(address: str) -> None:
    verdict = AddressPolicy().check(ipaddress.ip_address(address), 443)
    assert not verdict.allowed, verdict


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_allowed(address: str) -> None:
    assert AddressPolicy().check(ipaddress.ip_address(address), 443).allowed


def test_precedence_deny_beats_allow_and_own_beats_all() -> None:
    p = AddressPolicy.from_strings(["10.0.0.0/8", "127.0.0.0/8"], ["10.9.0.0/16"])
    p.add_listen_address("127.0.0.1", 8080)
    assert p.check(ipaddress.ip_address("10.1.2.3"), 443).allowed
    assert not p.check(ipaddress.ip_address("10.9.2.3"), 443).allowed
    assert p.check(ipaddress.ip_address("127.0.0.1"), 443).allowed
    verdict = p.check(ipaddress.ip_address("127.0.0.1"), 8080)
    assert not verdict.allowed and "proxy itself" in verdict.why
    # the denied network also catches the IPv4 embedded in an IPv6 address
    assert not p.check(ipaddress.ip_address("::ffff:10.9.0.1"), 443).allowed


def test_wildcard_listen_protects_every_local_address() -> None:
    p = AddressPolicy.from_strings(["0.0.0.0/0"], [])
    p.add_listen_address("0.0.0.0", 8080)
    assert not p.check(ipaddress.ip_address("127.0.0.1"), 8080).allowed
    assert not p.check(ipaddress.ip_address("10.0.0.5"), 8080).allowed
    assert p.check(ipaddress.ip_address("10.0.0.5"), 443).allowed
