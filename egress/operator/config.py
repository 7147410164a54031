"""The operator's settings, as option rows read from its environment (``OperatorConfig``).

kopf loads the handlers module and calls it; there is no argv of ours to parse, so the rows are
read through ``Option.value`` (environment, else default). The flags are named for ``--help``
tables should ``egress operator`` ever take them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from egress.options import Option

PROXY_ADMIN = Option(
    "--proxy-admin",
    "EGRESS_PROXY_ADMIN",
    "http://egress-proxy-admin.egress-system:9090",
    "admin URL of the proxy, whose /agents gives each agent's last activity (idle reaper)",
)
PLATFORM_NAMESPACE = Option(
    "--platform-namespace",
    "EGRESS_PLATFORM_NAMESPACE",
    "egress-system",
    "namespace of the platform (proxy, gateway)",
)
PLATFORM_DOMAIN = Option(
    "--platform-domain",
    "EGRESS_PLATFORM_DOMAIN",
    "agents.example.com",
    "domain under which agents' ingresses are named",
)
OPERATOR_OPTIONS: list[Option] = [PROXY_ADMIN, PLATFORM_NAMESPACE, PLATFORM_DOMAIN]


@dataclass(frozen=True)
class OperatorConfig:
    proxy_admin: str
    platform_namespace: str
    platform_domain: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OperatorConfig:
        """Each setting from its environment variable, else its default."""
        return cls(
            proxy_admin=PROXY_ADMIN.value(environ) or "",
            platform_namespace=PLATFORM_NAMESPACE.value(environ) or "",
            platform_domain=PLATFORM_DOMAIN.value(environ) or "",
        )
