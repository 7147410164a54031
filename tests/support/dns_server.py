"""A real DNS server (UDP, on 127.0.0.1) whose answers the test controls.

``answers[name]`` is a list of answer sets; the n-th query for a name gets the n-th set (the
last one repeats), which is how a rebinding attacker behaves: harmless first, private later.
"""

from __future__ import annotations

import socket
import threading
from collections import defaultdict

import dns.message
import dns.rdatatype
import dns.rrset


class FakeDNS:
    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.queries: defaultdict[str, int] = defaultdict(int)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            sets = self.answers.get(name)
            if question.rdtype == dns.rdatatype.A:
                self.queries[name] += 1
            if sets:
                current = (
                    sets[min(self.queries[name], len(sets)) - 1] if self.queries[name] else sets[0]
                )
                wanted = "AAAA" if question.rdtype == dns.rdatatype.AAAA else "A"
                addrs = [a for a in current if (":" in a) == (wanted == "AAAA")]
                if addrs:
                    response.answer.append(
                        dns.rrset.from_text(question.name, 0, "IN", wanted, *addrs)
                    )
            else:
                response.set_rcode(3)  # NXDOMAIN
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
