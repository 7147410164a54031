"""Gateway configuration: routes to OpenAI-compatible upstreams, and per-agent limits.

```json
{
  "routes": {
    "openai": {"base_url": "https://api.openai.com/v1", "secret": "openai",
               "auth_header": "Authorization", "auth_format": "Bearer {value}"}
  },
  "limits": {
    "default": {"requests_per_minute": 60, "tokens_per_day": 1000000},
    "agents": {"alice@example.com/triage-bot": {"tokens_per_day": 200000}}
  }
}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from egress.errors import ConfigError


@dataclass(frozen=True)
class Route:
    name: str
    base_url: str
    secret: str
    auth_header: str = "Authorization"
    auth_format: str = "Bearer {value}"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme

    @property
    def port(self) -> int:
        parts = urlsplit(self.base_url)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int = 60
    tokens_per_day: int = 1_000_000


@dataclass
class GatewayConfig:
    routes: dict[str, Route]
    default_limits: Limits = field(default_factory=Limits)
    agent_limits: dict[str, Limits] = field(default_factory=dict)

    def limits_for(self, agent_key: str) -> Limits:
        return self.agent_limits.get(agent_key, self.default_limits)

    @classmethod
    def load(cls, path: Path) -> GatewayConfig:
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as e:
            raise ConfigError(f"gateway config {path}: {e}", "gateway_config_invalid") from e
        routes: dict[str, Route] = {}
        for name, r in (doc.get("routes") or {}).items():
            try:
                route = Route(name=name, **r)
            except TypeError as e:
                raise ConfigError(f"route {name!r}: {e}", "gateway_config_invalid") from e
            if urlsplit(route.base_url).scheme not in ("http", "https"):
                raise ConfigError(
                    f"route {name!r}: base_url must be http(s)", "gateway_config_invalid"
                )
            routes[name] = route
        if not routes:
            raise ConfigError(f"gateway config {path}: no routes", "gateway_config_invalid")
        limits = doc.get("limits") or {}
        default = Limits(**(limits.get("default") or {}))
        agents = {
            k: Limits(**{**default.__dict__, **v}) for k, v in (limits.get("agents") or {}).items()
        }
        return cls(routes, default, agents)
