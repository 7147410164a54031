"""OPA as production runs it, for tests and benchmarks of the OPA engine at fleet scale.

- ``BundleOpa``: the real bin/opa with a config file that pulls the policy bundle from a bundle
  service (``egress policy bundle serve``), no files on its command line.
- ``RecordingProxy``: a tiny HTTP relay in front of OPA that records every request line, so a
  test can assert what the engine asked (e.g. never a full ``GET /v1/data``).
- ``fleet_data``: policy data in the project's format grown to N agents (filler rules the
  calling agents never match), as the issue measured it.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from egress.policy.bundle import opa_config
from egress.testing.net import free_port
from egress.testing.opa import default_opa_binary, spawn_opa
from egress.testing.process import ManagedProcess


@dataclass
class BundleOpa(ManagedProcess):
    binary: Path
    port: int
    config_file: Path
    proc: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, *, activated: bool = True) -> BundleOpa:
        """Spawn ``opa run --server -c config``; return once it answers /health (with
        ``activated``: once its bundles are activated too)."""
        ready = "/health?bundles" if activated else "/health"
        args = ["-c", str(self.config_file)]
        self.proc = spawn_opa(self.binary, self.port, args, ready, timeout)
        return self


def start_bundle_opa(
    bundle_service_url: str,
    workdir: Path,
    binary: Path | None = None,
    *,
    max_delay: int = 2,
    activated: bool = True,
    timeout: float = 30.0,
) -> BundleOpa:
    """A real OPA pulling ``bundles/egress.tar.gz`` from ``bundle_service_url`` (polls 1..N s)."""
    config = workdir / "opa-config.yaml"
    config.write_text(opa_config(bundle_service_url, min_delay=1, max_delay=max_delay))
    opa = BundleOpa(binary or default_opa_binary(), free_port(), config)
    return opa.start(timeout, activated=activated)


@dataclass
class RecordingProxy:
    """Relays HTTP to ``upstream`` and keeps ``requests``: (method, path with query)."""

    upstream: str
    requests: list[tuple[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RecordingProxy:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _relay(self) -> None:
                relay.requests.append((self.command, self.path))
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                kind = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                r = httpx.request(
                    self.command, relay.upstream + self.path, content=body, headers=kind
                )
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = _relay

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def paths(self) -> list[str]:
        return [path.split("?", 1)[0] for _, path in list(self.requests)]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def fleet_data(base: dict[str, Any], agents: int, rules_per_agent: int = 3) -> dict[str, Any]:
    """``base`` (project-format data) plus filler agents up to ``agents`` in total."""
    data: dict[str, Any] = {"egress": dict(base["egress"])}
    fleet = {user: dict(names) for user, names in base["egress"].get("agents", {}).items()}
    have = sum(len(names) for names in fleet.values())
    for i in range(max(0, agents - have)):
        rules = [
            {
                "id": f"filler-{i}-{j}",
                "hosts": [f"svc{j}.tenant{i}.internal.example"],
                "methods": ["GET", "POST"],
                "paths": [f"/v1/tenant/{i}/"],
                "secrets": [],
            }
            for j in range(rules_per_agent)
        ]
        fleet.setdefault(f"user{i % 1000}@fleet.example", {})[f"agent-{i}"] = {"rules": rules}
    data["egress"]["agents"] = fleet
    return data
