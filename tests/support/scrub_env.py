"""A proxy of its own for the scrubbing tests, with an HTTP/1.1 and an HTTP/2 TLS origin.

Alice may send her ``github`` and ``special`` secrets to both origins (``/api/``); ``special``
has characters every encoder escapes, so percent, JSON and base64 forms all differ from the
plain value. Her ``openai`` secret is bound to another host: it is never swapped here, and
must still be scrubbed from every answer (it is hers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egress.secrets.local import LocalSecretStore
from tests.support.h2_origin import H2Origin, start_h2_origin
from tests.support.origin import Origin, start_origin
from tests.support.policy import policy_doc
from tests.support.proxy import ProxyProcess, start_proxy
from tests.support.responder import Responder

SPECIAL_VALUE = "sk/Live+Key=é&<v>1 2%~x9\"q'\\z"


@dataclass
class ScrubEnv:
    proxy: ProxyProcess
    h1: Origin
    h2: H2Origin
    placeholders: dict[str, str]

    def port(self, http2: bool) -> int:
        return self.h2.port if http2 else self.h1.port

    def responder(self, http2: bool) -> Responder:
        return self.h2.responder if http2 else self.h1.responder

    def close(self) -> None:
        self.proxy.stop()
        self.h1.close()
        self.h2.close()


def start_scrub_env(world: Any, root: Path) -> ScrubEnv:
    leaf = world.test_ca.issue("scrub-origin", ["localhost"], ["127.0.0.1"])
    h1 = start_origin(leaf.cert_path, leaf.key_path)
    h2 = start_h2_origin(leaf.cert_path, leaf.key_path)
    state = root / "state"
    state.mkdir(parents=True, exist_ok=True)
    for name in ("identities.json", "secrets.enc", "secrets.key"):
        (state / name).write_bytes((world.state_dir / name).read_bytes())
        (state / name).chmod(0o600)
    store = LocalSecretStore.open(state / "secrets.enc", state / "secrets.key")
    special = store.put(
        "alice@example.com", "triage-bot", "special", SPECIAL_VALUE, ["localhost"]
    ).placeholder
    rule = {
        "id": "scrub-origins",
        "hosts": ["localhost"],
        "ports": [h1.port, h2.port],
        "methods": ["GET", "POST"],
        "paths": ["/api/"],
        "secrets": ["github", "special"],
    }
    # bob reads what others stored, under the server's name and its address alike
    reader = {**rule, "id": "reader", "hosts": ["localhost", "127.0.0.1"], "secrets": []}
    data = policy_doc(
        {"alice@example.com/triage-bot": [rule], "bob@example.com/triage-bot": [reader]}
    )
    data_file = root / "data.json"
    data_file.write_text(json.dumps(data))
    proxy = start_proxy(
        state_dir=state,
        ca_dir=world.ca_dir,
        data_file=data_file,
        upstream_ca=world.test_ca.cert_path,
    )
    placeholders = dict(world.placeholders, special=special)
    return ScrubEnv(proxy, h1, h2, placeholders)
