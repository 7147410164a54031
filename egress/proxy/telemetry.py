"""Operator telemetry: Prometheus metrics, health and readiness, per-agent last activity.

Counters are fed from the decision events themselves (``Telemetry.observe``), so metrics and
logs can never disagree. Per-agent series are capped (``max_agents``); agents beyond the cap are
counted under ``agent="other"`` so a flood of identities cannot blow up label cardinality.
The admin listener is separate from the proxy port and binds to loopback by default.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
ENGINE_FAILURES = frozenset(
    {"policy_error", "policy_timeout", "policy_undefined", "policy_malformed"}
)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Telemetry:
    def __init__(self, max_agents: int = 1000) -> None:
        self.max_agents = max_agents
        self.decisions: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.engine_errors: defaultdict[str, int] = defaultdict(int)
        self.secret_errors = 0
        self.hist = [0] * (len(BUCKETS) + 1)
        self.hist_sum = 0.0
        self.hist_count = 0
        self.agent_requests: defaultdict[str, int] = defaultdict(int)
        self.agent_last: dict[str, float] = {}
        self.tokens: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.started = time.time()

    def observe(self, event: dict[str, Any]) -> None:
        result = event.get("result") or {}
        reason = str(result.get("reason") or "")
        decision = (
            "report" if result.get("would_deny") else ("allow" if result.get("allow") else "deny")
        )
        self.decisions[(decision, reason)] += 1
        if reason in ENGINE_FAILURES:
            self.engine_errors[reason] += 1
        if reason == "secret_unavailable":
            self.secret_errors += 1
        ms = (event.get("metrics") or {}).get("decision_ms")
        if isinstance(ms, int | float):
            seconds = ms / 1000
            self.hist_sum += seconds
            self.hist_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.hist[i] += 1
                    break
            else:
                self.hist[-1] += 1
        agent = event.get("agent")
        if agent:
            key = f"{agent.get('user')}/{agent.get('name')}"
            if key not in self.agent_requests and len(self.agent_requests) >= self.max_agents:
                key = "other"
            self.agent_requests[key] += 1
            self.agent_last[key] = time.time()
            usage = event.get("usage")
            if isinstance(usage, dict):
                route = str(usage.get("route") or "")
                for kind in ("prompt", "completion"):
                    n = usage.get(f"{kind}_tokens")
                    if isinstance(n, int):
                        self.tokens[(key, route, kind)] += n

    def render(self, extra: dict[str, float], info: dict[str, str]) -> str:
        out: list[str] = []
        self._render_decisions(out)
        self._render_agents(out)
        for name, value in sorted(extra.items()):
            kind = "gauge" if name.endswith(("_depth", "_healthy", "_up")) else "counter"
            _metric(out, name, kind, name.replace("_", " "))
            out.append(f"{name} {value}")
        _metric(out, "egress_build_info", "gauge", "Engine and policy revision in force.")
        labels = ",".join(f'{k}="{_esc(v)}"' for k, v in sorted(info.items()))
        out.append(f"egress_build_info{{{labels}}} 1")
        return "\n".join(out) + "\n"

    def _render_decisions(self, out: list[str]) -> None:
        _metric(out, "egress_decisions_total", "counter", "Decision events by outcome and reason.")
        for (decision, reason), n in sorted(self.decisions.items()):
            out.append(
                f'egress_decisions_total{{decision="{decision}",reason="{_esc(reason)}"}} {n}'
            )
        name = "egress_decision_duration_seconds"
        _metric(out, name, "histogram", "Time to a policy decision.")
        cumulative = 0
        for bound, n in zip(BUCKETS, self.hist, strict=False):
            cumulative += n
            out.append(f'{name}_bucket{{le="{bound}"}} {cumulative}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.hist_count}')
        out.append(f"{name}_sum {self.hist_sum:.6f}")
        out.append(f"{name}_count {self.hist_count}")
        _metric(out, "egress_engine_errors_total", "counter", "Policy engine failures (denied).")
        for reason, n in sorted(self.engine_errors.items()):
            out.append(f'egress_engine_errors_total{{reason="{reason}"}} {n}')
        help_text = "Secret store failures (denied)."
        _metric(out, "egress_secret_store_errors_total", "counter", help_text)
        out.append(f"egress_secret_store_errors_total {self.secret_errors}")

    def _render_agents(self, out: list[str]) -> None:
        help_text = f"Decision events per agent (first {self.max_agents} agents, then 'other')."
        _metric(out, "egress_agent_requests_total", "counter", help_text)
        for agent, n in sorted(self.agent_requests.items()):
            out.append(f'egress_agent_requests_total{{agent="{_esc(agent)}"}} {n}')
        name = "egress_agent_last_activity_timestamp_seconds"
        _metric(out, name, "gauge", "Unix time of each agent's last decision event.")
        for agent, t in sorted(self.agent_last.items()):
            out.append(f'{name}{{agent="{_esc(agent)}"}} {t:.3f}')
        help_text = "LLM tokens by agent, route and kind (prompt, completion), from upstream usage."
        _metric(out, "egress_gateway_tokens_total", "counter", help_text)
        for (agent, route, kind), n in sorted(self.tokens.items()):
            out.append(
                f'egress_gateway_tokens_total{{agent="{_esc(agent)}",route="{_esc(route)}",'
                f'kind="{kind}"}} {n}'
            )


def _metric(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def admin_app(
    telemetry: Telemetry,
    *,
    extra: Callable[[], dict[str, float]],
    info: Callable[[], dict[str, str]],
    ready: Callable[[], list[str]],
) -> web.Application:
    """``ready`` returns the reasons the proxy is not ready (empty when it is)."""

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            text=telemetry.render(extra(), info()), content_type="text/plain", charset="utf-8"
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        problems = ready()
        body = orjson.dumps({"ready": not problems, "problems": problems})
        return web.Response(
            body=body, status=200 if not problems else 503, content_type="application/json"
        )

    async def agents(_: web.Request) -> web.Response:
        doc = {
            a: {
                "last_activity": telemetry.agent_last.get(a),
                "requests": telemetry.agent_requests[a],
            }
            for a in sorted(telemetry.agent_requests)
        }
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    app = web.Application()
    app.add_routes(
        [
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/agents", agents),
        ]
    )
    return app


async def start_admin(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server: Any = site._server  # aiohttp keeps the asyncio.Server private
    bound = server.sockets[0].getsockname()[1] if server and server.sockets else port
    return runner, int(bound)
