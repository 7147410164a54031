"""Which addresses the proxy may dial: IP literal parsing and classification.

Precedence, first match wins (README "Destination safety"):
  1. the proxy's own listen address and port            -> refused (request loops)
  2. ``--deny-cidr``                                      -> refused
  3. ``--allow-cidr``                                     -> allowed
  4. not globally routable unicast: loopback, RFC 1918, link-local (169.254.169.254 cloud
     metadata), CGNAT 100.64/10, multicast, broadcast, unspecified, documentation, IPv6 ULA and
     link-local, and IPv6 forms that embed such an IPv4 (mapped, NAT64, 6to4, Teredo)
                                                          -> refused
  5. everything else                                      -> allowed
An IPv6 address that embeds an IPv4 one is refused when either of them is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address the OS would dial for ``host`` if it is an IP literal in any textual form.

    Besides the canonical forms this accepts what ``inet_aton`` accepts: decimal integers
    (``2130706433``), hex (``0x7f000001``, ``0x7f.1``), octal (``0177.0.0.1``) and shortened
    dotted forms (``127.1``). Returns None for a name that needs DNS.
    """
    h = host.strip().removeprefix("[").removesuffix("]")
    if "%" in h:  # IPv6 zone id: never a legitimate egress destination
        h = h.split("%", 1)[0]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    parts = h.split(".")
    if not h or not all(parts) or len(parts) > 4:
        return None
    if not all(_is_c_number(p) for p in parts):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(h))
    except OSError:
        return None


def _is_c_number(part: str) -> bool:
    p = part.lower()
    if p.startswith("0x"):
        return len(p) > 2 and all(c in "0123456789abcdef" for c in p[2:])
    return p.isdigit()


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    out: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip in NAT64_WELL_KNOWN:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)  # (server, client)
    # IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks)
    if int(ip) >> 32 == 0 and int(ip) > 1:
        out.append(ipaddress.IPv4Address(int(ip)))
    return out


def _publicly_routable(ip: IPAddress) -> bool:
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip in NAT64_LOCAL_USE:
        return False
    return ip.is_global


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    why: str


@dataclass
class AddressPolicy:
    allow: list[IPNetwork] = field(default_factory=list)
    deny: list[IPNetwork] = field(default_factory=list)
    own: set[tuple[IPAddress, int]] = field(default_factory=set)
    own_any_port: set[int] = field(default_factory=set)  # listening on 0.0.0.0 / ::

    @classmethod
    def from_strings(cls, allow: Iterable[str], deny: Iterable[str]) -> AddressPolicy:
        return cls(
            allow=[ipaddress.ip_network(c.strip(), strict=False) for c in allow if c],
            deny=[ipaddress.ip_network(c.strip(), strict=False) for c in deny if c],
        )

    def add_listen_address(self, host: str, port: int) -> None:
        ip = parse_ip_literal(host)
        if ip is None or ip.is_unspecified:
            self.own_any_port.add(port)
        else:
            self.own.add((ip, port))

    def _is_own(self, ip: IPAddress, port: int) -> bool:
        if (ip, port) in self.own:
            return True
        if port in self.own_any_port:
            return ip.is_loopback or ip.is_unspecified or ip.is_private or ip.is_link_local
        return False

    def check(self, ip: IPAddress, port: int) -> Verdict:
        if self._is_own(ip, port):
            return Verdict(False, f"{ip} port {port} is the proxy itself")
        candidates = [ip, *embedded_ipv4(ip)]
        for cand in candidates:
            for net in self.deny:
                if cand.version == net.version and cand in net:
                    return Verdict(False, f"{cand} is in --deny-cidr {net}")
        if any(ip.version == net.version and ip in net for net in self.allow):
            return Verdict(True, "in --allow-cidr")
        for cand in candidates:
            allowed_explicitly = any(cand.version == n.version and cand in n for n in self.allow)
            if not allowed_explicitly and not _publicly_routable(cand):
                shown = f"{cand} (embedded in {ip})" if cand is not ip else str(ip)
                return Verdict(False, f"{shown} is not a public unicast address")
        return Verdict(True, "public unicast")
