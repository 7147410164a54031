"""Engine assembly, in one place for every process that decides.

``make_engine`` is what the proxy and the gateway serve with: the OPA client when an OPA URL is
given (with its timeout), else the embedded engine that reloads changed files, both behind the
decision cache. ``egress policy replay`` builds its engine here too (``offline``): the embedded
engine with a candidate policy, no reload and no cache, because replay memoises by input itself
and calls the engine's synchronous ``evaluate`` millions of times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from egress.policy.cache import CachedEngine
from egress.policy.embedded import EmbeddedEngine
from egress.policy.opa import OpaEngine


class PolicySettings(Protocol):
    """What a process config says about its engine (``ServeConfig``, ``GatewayServeConfig``)."""

    @property
    def policy_dir(self) -> Path: ...
    @property
    def data_file(self) -> Path | None: ...
    @property
    def opa_url(self) -> str | None: ...
    @property
    def opa_timeout(self) -> float: ...
    @property
    def policy_workers(self) -> int: ...


def make_engine(settings: PolicySettings) -> CachedEngine:
    """The serving engine: OPA at ``opa_url`` (within ``opa_timeout``) if set, else the
    embedded one; either behind the decision cache. Not started: the caller awaits ``start``."""
    if settings.opa_url:
        return CachedEngine(OpaEngine(settings.opa_url, timeout=settings.opa_timeout))
    return CachedEngine(
        EmbeddedEngine(settings.policy_dir, settings.data_file, workers=settings.policy_workers)
    )


def offline_engine(policy_dir: Path, data_file: Path | None) -> EmbeddedEngine:
    """The embedded engine loaded once, for replaying logged inputs against a candidate policy."""
    return EmbeddedEngine(policy_dir, data_file, reload_interval=float("inf"), workers=0)
