"""A stand-in for the Kubernetes API's TokenReview endpoint, over real TLS on 127.0.0.1.

OpenBao's Kubernetes auth method asks the cluster's API server whether a service-account JWT
is valid (``POST /apis/authentication.k8s.io/v1/tokenreviews``). No Kubernetes API server can
run here, so this small HTTPS server answers that one call: tokens it was told about are
authenticated as ``system:serviceaccount:<namespace>:<name>``, anything else is not. OpenBao,
its Kubernetes auth plugin and egress's client are the real ones.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def fake_service_account_jwt(namespace: str, name: str, serial: int = 0) -> str:
    """A structurally valid JWT with service-account claims; its signature is never checked
    by OpenBao (the TokenReview answer is what authenticates it)."""

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": "0000-test",
        "iat": int(time.time()) - 60 + serial,
        "exp": int(time.time()) + 3600,
    }
    return f"{b64({'alg': 'RS256', 'kid': 'test'})}.{b64(claims)}.{b64({'sig': 'x'})}"


class TokenReviewServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.valid: dict[str, tuple[str, str]] = {}  # token -> (namespace, name)
        self.reviews = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.reviews += 1
                who = outer.valid.get(body.get("spec", {}).get("token", ""))
                status: dict = {"authenticated": False}
                if who is not None:
                    status = {
                        "authenticated": True,
                        "user": {
                            "username": f"system:serviceaccount:{who[0]}:{who[1]}",
                            "uid": "0000-test",
                            "groups": ["system:serviceaccounts"],
                        },
                    }
                doc = {
                    "kind": "TokenReview",
                    "apiVersion": "authentication.k8s.io/v1",
                    "status": status,
                }
                out = json.dumps(doc).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
