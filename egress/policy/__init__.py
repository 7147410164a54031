"""Decide: may this agent make this request? One interface, two engines, same Rego.

- ``EmbeddedEngine`` (``embedded.py``): evaluates ``policies/`` in process (compiled by OPA
  to Wasm, run by wasmtime).
- ``OpaEngine`` (``opa.py``): asks a real OPA server over its REST Data API; ``bundle.py``
  and ``bundle_server.py`` build and serve the bundle such a server pulls.

Both return a ``Decision`` built by ``decision_from_document``, which is the fail-closed gate:
anything but a well-formed document with ``allow`` being exactly ``true`` is a deny.
"""

from __future__ import annotations

from egress.policy.decision import Decision, PolicyEngine, decision_from_document, deny
from egress.policy.input import build_input

__all__ = ["Decision", "PolicyEngine", "build_input", "decision_from_document", "deny"]
