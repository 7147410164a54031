"""kopf handlers: thin wrappers that hand each event to the ``Reconciler``.

Run with ``egress operator`` (``kopf run`` on this module). Settings come from the
environment through ``OperatorConfig`` (operator/config.py): ``EGRESS_PLATFORM_*`` for the
platform names, ``EGRESS_PROXY_ADMIN`` for the proxy's admin URL the idle reaper reads last
activity from.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
import kopf

from egress.kube.agents import GROUP, PLURAL, VERSION
from egress.operator.cluster import KubeCluster
from egress.operator.config import OperatorConfig
from egress.operator.reconcile import Reconciler
from egress.operator.render import Platform

_reconciler: Reconciler | None = None


@cache
def config() -> OperatorConfig:
    return OperatorConfig.from_env()


def _last_activity() -> dict[str, float]:
    url = config().proxy_admin
    try:
        doc = httpx.get(url.rstrip("/") + "/agents", timeout=3).json()
    except (httpx.HTTPError, ValueError):
        return {}  # unknown activity never stops anything
    return {k: v["last_activity"] for k, v in doc.items() if v.get("last_activity")}


def reconciler() -> Reconciler:
    global _reconciler
    if _reconciler is None:
        platform = Platform(
            system_namespace=config().platform_namespace,
            ingress_domain=config().platform_domain,
        )
        _reconciler = Reconciler(KubeCluster(), platform, _last_activity)
    return _reconciler


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    try:
        patch.status.update(reconciler().reconcile(dict(spec)))
    except ValueError as e:
        raise kopf.PermanentError(f"invalid Agent: {e}") from e


@kopf.timer(GROUP, VERSION, PLURAL, interval=60, initial_delay=30)
def correct_drift(spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
    patch.status.update(reconciler().reconcile(dict(spec)))


@kopf.timer(GROUP, VERSION, PLURAL, interval=60)
def stop_idle(name: str, spec: kopf.Spec, **_: Any) -> None:
    reconciler().reap_idle(name, dict(spec))


@kopf.on.delete(GROUP, VERSION, PLURAL)
def remove(spec: kopf.Spec, **_: Any) -> None:
    reconciler().delete(dict(spec))
