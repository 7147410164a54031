"""Resolve once, check every answer, dial the address that was checked.

The resolution made here is the one the proxy dials: the chosen IP is pinned on the client
connection and ``Upstream.server_connect`` connects to it (TLS still verifies the name), so a
name that answers differently a moment later (DNS rebinding) cannot steer the dial.
``--dns-server host:port`` sends queries to that server (dnspython); otherwise the system
resolver (getaddrinfo) is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from egress import reasons
from egress.destination.addresses import AddressPolicy, IPAddress, parse_ip_literal
from egress.errors import EgressError


class DestinationError(EgressError):
    pass


@dataclass(frozen=True)
class Resolved:
    host: str
    port: int
    ip: IPAddress
    refused: tuple[str, ...] = ()  # answers that were not allowed (for the log)


class Resolver:
    def __init__(
        self, policy: AddressPolicy, *, dns_server: str | None = None, timeout: float = 2.0
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self._dns: dns.asyncresolver.Resolver | None = None
        if dns_server:
            host, _, port = dns_server.rpartition(":")
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [host.strip("[]") or "127.0.0.1"]
            self._dns.port = int(port or 53)
            self._dns.lifetime = timeout

    async def _lookup(self, host: str) -> list[IPAddress]:
        if self._dns is not None:
            out: list[IPAddress] = []
            for rdtype in ("A", "AAAA"):
                try:
                    answer = await self._dns.resolve(host, rdtype, search=False)
                except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                    continue
                out.extend(ipaddress.ip_address(r.address) for r in answer)
            return out
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        seen: list[IPAddress] = []
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in seen:
                seen.append(ip)
        return seen

    async def resolve(self, host: str, port: int) -> Resolved:
        literal = parse_ip_literal(host)
        name = host.rstrip(".").lower()
        if literal is not None:
            candidates = [literal]
        elif name == "localhost" or name.endswith(".localhost"):
            # RFC 6761: always loopback, whatever a DNS server says
            candidates = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        else:
            try:
                async with asyncio.timeout(self.timeout):
                    candidates = await self._lookup(host.rstrip("."))
            except (TimeoutError, dns.exception.DNSException, OSError) as e:
                raise DestinationError(
                    reasons.DESTINATION_UNRESOLVABLE, f"cannot resolve {host!r}: {type(e).__name__}"
                ) from e
        if not candidates:
            raise DestinationError(reasons.DESTINATION_UNRESOLVABLE, f"no address for {host!r}")
        refused: list[str] = []
        for ip in candidates:
            verdict = self.policy.check(ip, port)
            if verdict.allowed:
                return Resolved(host, port, ip, tuple(refused))
            refused.append(verdict.why)
        raise DestinationError(reasons.DESTINATION_FORBIDDEN, "; ".join(refused))
