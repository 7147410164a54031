"""A small bundle service: serves the policy bundle at ``/bundles/egress.tar.gz`` for OPA to pull.

OPA polls a bundle service with ``If-None-Match: <last ETag>``; an unchanged bundle answers
304 with no body, so a poll costs a stat of the source files and a few bytes on the wire,
whatever the size of the data. The ETag is the bundle's content revision.

The source files are stat-polled (every ``poll_interval`` seconds by a thread, and on each
request) and the bundle is rebuilt when any size, mtime or the file set changes. A rebuild that
fails (data not JSON, a module without a package) is reported on stderr once per change and the
last good bundle keeps being served, as the embedded engine keeps its last good policy.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from egress.errors import ConfigError
from egress.policy.bundle import BUNDLE_RESOURCE, Bundle, build_bundle, source_files

Signature = tuple[tuple[str, int, int], ...]


class BundleSource:
    """The current bundle of ``policy_dir`` + ``data_file``, rebuilt when the files change."""

    def __init__(self, policy_dir: Path, data_file: Path | None) -> None:
        self.policy_dir = policy_dir
        self.data_file = data_file
        self._lock = threading.Lock()
        self._signature = self._stat()
        self.bundle: Bundle = build_bundle(policy_dir, data_file)  # the first build must work
        self.builds = 1

    def _stat(self) -> Signature:
        try:
            files = source_files(self.policy_dir, self.data_file)
            return tuple((str(p), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()])
        except (OSError, ConfigError):
            return ()  # files vanishing mid-edit: counts as a change, rebuilt on the next poll

    def refresh(self) -> Bundle:
        """Rebuild if the files changed since the last look; the bundle to serve."""
        with self._lock:
            signature = self._stat()
            if signature != self._signature:
                self._signature = signature
                try:
                    self.bundle = build_bundle(self.policy_dir, self.data_file)
                    self.builds += 1
                except (OSError, ConfigError) as e:
                    print(
                        f"egress: bundle rebuild failed, serving revision "
                        f"{self.bundle.revision}: {e}",
                        file=sys.stderr,
                        flush=True,
                    )
            return self.bundle


def _handler(source: BundleSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return  # OPA polls every few seconds: no line per poll

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/" + BUNDLE_RESOURCE:
                self._reply(404, b"not found\n", "text/plain")
                return
            bundle = source.refresh()
            if bundle.etag in _etags(self.headers.get("If-None-Match", "")):
                self._reply(304, b"", None, bundle.etag)
                return
            self._reply(200, bundle.archive, "application/gzip", bundle.etag)

        def _reply(
            self, status: int, body: bytes, kind: str | None, etag: str | None = None
        ) -> None:
            self.send_response(status)
            if etag is not None:
                self.send_header("ETag", etag)
            if kind is not None:
                self.send_header("Content-Type", kind)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


class BundleServer:
    """The HTTP service around a ``BundleSource``; ``port`` 0 picks a free one."""

    def __init__(
        self,
        policy_dir: Path,
        data_file: Path | None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self.source = BundleSource(policy_dir, data_file)
        self.poll_interval = poll_interval
        self._http = ThreadingHTTPServer((host, port), _handler(self.source))
        self._http.daemon_threads = True
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        host = self._http.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> BundleServer:
        for target, name in ((self._http.serve_forever, "serve"), (self._poll, "poll")):
            t = threading.Thread(target=target, name=f"egress-bundle-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _poll(self) -> None:
        while not self._stopped.wait(self.poll_interval):
            self.source.refresh()

    def stop(self) -> None:
        self._stopped.set()
        self._http.shutdown()
        self._http.server_close()
        for t in self._threads:
            t.join(5)
