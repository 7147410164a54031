"""Policy data in the project's format (policies/data.json) for N agents, and requests for them.

Every agent gets ``RULES`` rules drawn from a mix of real-world services (SaaS APIs with path
prefixes and a secret, package indexes without paths, globbed cloud hosts, internal services),
with per-agent paths and method sets, so no two agents hold the same rules and the agents a
decision does not concern are filler its caller never matches. Agent ``i`` is a pure function
of ``i`` (seeded), so requests for any agent are built without holding the data in memory, and
the file is written one user at a time (a 50,000-agent file is ~150 MB of JSON).

Agent 0 holds the probe rule: GET ``probe.fleet.example`` under ``/fleet-probe/v0/``.
``edit_probe`` turns that into ``/v1/`` in the serialized bytes (same length), which is "one
agent's rule changed" for the reload measurement. ``data.egress.revision`` (the publisher's
revision document, so the OPA engine can cache) is left alone by that edit: it is shared data,
and bumping it would make the embedded engine drop every agent's cached decisions.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from egress.identity.model import Identity
from egress.policy import build_input

RULES = 20
AGENTS_PER_USER = 10
PROBE_HOST = "probe.fleet.example"
PROBE_OLD, PROBE_NEW = b"/fleet-probe/v0/", b"/fleet-probe/v1/"
METHOD_SETS = [["GET"], ["GET", "HEAD"], ["GET", "POST"], ["POST"], ["GET", "POST", "PATCH"], ["*"]]
# (host pattern, path prefixes ({n}: per agent), secret or None)
SERVICES: list[tuple[str, list[str], str | None]] = [
    ("api.github.com", ["/repos/org{n}/", "/user", "/search/"], "github"),
    ("api.openai.com", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"], "openai"),
    ("api.anthropic.com", ["/v1/messages"], "anthropic"),
    ("pypi.org", [], None),
    ("files.pythonhosted.org", [], None),
    ("registry.npmjs.org", [], None),
    ("proxy.golang.org", [], None),
    ("*.s3.amazonaws.com", ["/tenant-{n}/"], "aws"),
    ("**.googleapis.com", ["/storage/v1/b/bucket-{n}/", "/bigquery/v2/projects/p{n}/"], "gcp"),
    ("hooks.slack.com", ["/services/T{n}/"], "slack"),
    ("api.stripe.com", ["/v1/charges", "/v1/customers"], "stripe"),
    ("api.linear.app", ["/graphql"], "linear"),
    ("gitlab.com", ["/api/v4/projects/{n}/"], "gitlab"),
    ("api.datadoghq.com", ["/api/v1/series", "/api/v2/logs"], "datadog"),
    ("sentry.io", ["/api/0/projects/org{n}/"], "sentry"),
    ("*.atlassian.net", ["/rest/api/3/"], "jira"),
    ("api.notion.com", ["/v1/pages", "/v1/databases/"], "notion"),
    ("*.svc.tenant{n}.internal", ["/v1/"], None),
    ("objects.githubusercontent.com", [], None),
    ("api.twilio.com", ["/2010-04-01/Accounts/AC{n}/"], "twilio"),
    ("huggingface.co", ["/api/models/", "/org{n}/"], "hf"),
    ("api.sendgrid.com", ["/v3/mail/send"], "sendgrid"),
    ("login.microsoftonline.com", ["/tenant{n}/oauth2/"], None),
    ("graph.microsoft.com", ["/v1.0/users/", "/v1.0/sites/"], "msgraph"),
]


def agent_id(i: int) -> Identity:
    return Identity(f"user{i // AGENTS_PER_USER}@fleet.example", f"agent-{i}", "fleet")


def rules_for(i: int) -> list[dict[str, Any]]:
    """Agent ``i``'s rules: ``RULES`` distinct services, per-agent paths and methods."""
    rng = random.Random(i)
    rules = []
    for k, (host, paths, secret) in enumerate(rng.sample(SERVICES, min(RULES, len(SERVICES)))):
        rule: dict[str, Any] = {"id": f"a{i}-r{k}", "hosts": [host.format(n=i)]}
        rule["methods"] = rng.choice(METHOD_SETS)
        if paths:
            rule["paths"] = [p.format(n=i) for p in paths]
        if secret:
            rule["secrets"] = [secret]
        rules.append(rule)
    if i == 0:
        probe = {"id": "probe", "hosts": [PROBE_HOST], "methods": ["GET"]}
        rules[0] = {**probe, "paths": [PROBE_OLD.decode()]}
    return rules


def write_data(path: Path, agents: int, revision: str = "fleet-r0") -> None:
    """The data file for ``agents`` agents, written one user at a time."""
    users = (agents + AGENTS_PER_USER - 1) // AGENTS_PER_USER
    with path.open("w") as f:
        f.write(f'{{"egress": {{"revision": {json.dumps(revision)}, "killed": {{}}, "agents": {{')
        for u in range(users):
            first = u * AGENTS_PER_USER
            entry = {
                f"agent-{i}": {"rules": rules_for(i)}
                for i in range(first, min(first + AGENTS_PER_USER, agents))
            }
            f.write(("," if u else "") + json.dumps(f"user{u}@fleet.example") + ": ")
            f.write(json.dumps(entry))
        f.write("}}}")


def edit_probe(raw: bytes) -> bytes:
    """The same data with agent 0's probe rule moved to ``/fleet-probe/v1/``."""
    assert raw.count(PROBE_OLD) == 1, "probe rule missing or duplicated"
    return raw.replace(PROBE_OLD, PROBE_NEW)


def probe_input(seq: int) -> dict[str, Any]:
    """A GET for agent 0 that only the edited probe rule allows (unique path: never cached)."""
    path = f"{PROBE_NEW.decode()}obj{seq}"
    return build_input(
        agent_id(0),
        phase="request",
        scheme="https",
        host=PROBE_HOST,
        port=443,
        method="GET",
        path=path,
    )


def request_for(i: int, rng: random.Random, seq: int) -> dict[str, Any]:
    """A request of agent ``i`` with a unique path: ~70% allowed by one of its rules, the rest
    denied (unlisted host, wrong method or path) as real agent traffic mixes them."""
    rule = rng.choice(rules_for(i))
    host = rule["hosts"][0].replace("**.", "eu.").replace("*.", f"b{seq}.")
    methods = rule["methods"]
    method = rng.choice(["GET", "POST"]) if methods == ["*"] else rng.choice(methods)
    prefix = rng.choice(rule.get("paths") or ["/"])
    roll = rng.random()
    if roll > 0.9:
        host = f"exfil{seq}.attacker.example"
    elif roll > 0.8:
        method = "DELETE" if methods != ["*"] else method
    elif roll > 0.7 and rule.get("paths"):
        prefix = "/admin/"
    return build_input(
        agent_id(i),
        phase="request",
        scheme="https",
        host=host,
        port=443,
        method=method,
        path=f"{prefix}item/{seq}",
        headers=[("user-agent", "fleet-bench")],
    )
