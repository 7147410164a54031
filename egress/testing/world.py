"""One world builder: origin CA, proxy CA, state directory, agents, secrets, policy data.

``world(root)`` lays out under ``root``: ``test-ca/`` (a CA of the caller's own for TLS
origins, with one ``origin`` leaf for localhost and 127.0.0.1), ``certs/`` (the proxy's CA,
as ``egress ca init`` makes it) and ``state/`` (``identities.json``, ``secrets.enc``/``.key``).
The returned ``World`` then registers agents, stores secrets and writes policy documents, each
in one call, so tests and benchmarks stop spelling these steps out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from egress.identity.credentials import IdentitiesFile
from egress.proxy import ca
from egress.secrets.local import LocalSecretStore
from egress.testing.pki import Leaf, TestCA
from egress.testing.policy import Rule, policy_doc


@dataclass
class World:
    """The files a proxy or gateway under test reads, and the handles that write them."""

    root: Path
    test_ca: TestCA
    leaf: Leaf  # the origin certificate, for localhost and 127.0.0.1
    ca_dir: Path  # the proxy's CA (--ca-dir)
    state_dir: Path  # identities and the local secret store (--state-dir)
    identities: IdentitiesFile
    _store: LocalSecretStore | None = field(default=None, repr=False)

    @property
    def store(self) -> LocalSecretStore:
        """The local secret store in ``state_dir``, created on first use."""
        if self._store is None:
            self._store = LocalSecretStore.open(
                self.state_dir / "secrets.enc", self.state_dir / "secrets.key", create=True
            )
        return self._store

    def agent(self, user: str, name: str, namespace: str | None = None) -> str:
        """Register ``user/name``; returns its token."""
        _, token = self.identities.add(user, name, namespace=namespace)
        return token

    def secret(
        self,
        user: str,
        agent: str,
        name: str,
        value: str,
        hosts: list[str],
        *,
        prefix: str = "",
        allow_plaintext: bool = False,
    ) -> str:
        """Store a secret for ``user/agent``; returns the placeholder the agent sends."""
        ref = self.store.put(
            user,
            agent,
            name,
            value,
            hosts,
            placeholder_prefix=prefix,
            allow_plaintext=allow_plaintext,
        )
        return ref.placeholder

    def policy(
        self,
        agents: Mapping[str, Sequence[Rule]],
        killed: Iterable[str] = (),
        name: str = "data.json",
    ) -> Path:
        """Write ``policy_doc(agents, killed)`` to ``root/name``; returns the path."""
        path = self.root / name
        path.write_text(json.dumps(policy_doc(agents, killed)))
        return path


def world(root: Path, *, origin_ca: str = "origin-test-ca") -> World:
    """A fresh world under ``root`` (see the module docstring)."""
    root.mkdir(parents=True, exist_ok=True)
    test_ca = TestCA.create(root / "test-ca", origin_ca)
    leaf = test_ca.issue("origin", ["localhost"], ["127.0.0.1"])
    ca_dir = root / "certs"
    ca.init_ca(ca_dir)
    state = root / "state"
    return World(root, test_ca, leaf, ca_dir, state, IdentitiesFile(state / "identities.json"))
