"""One table of decision vectors, answered by BOTH engines: embedded (OPA-compiled Wasm) and
the OPA server.

Any disagreement with the table (and so between the engines) fails. The real OPA server is
bin/opa (built from OPA's Go module by `make opa`), started here on a free port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from egress.policy.embedded import EmbeddedEngine
from egress.policy.opa import OpaEngine
from tests.support.opa import OpaServer, start_opa

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((Path(__file__).parent / "decision_vectors.json").read_text())
CASES = VECTORS["cases"]


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 50
    assert len({c["name"] for c in CASES}) == len(CASES)
    reasons = {c["expect"]["reason"] for c in CASES}
    assert reasons >= {
        "allowed",
        "agent_killed",
        "agent_unknown",
        "host_not_allowed",
        "scheme_not_allowed",
        "method_not_allowed",
        "path_not_allowed",
    }


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vectors") / "data.json"
    path.write_text(json.dumps(VECTORS["data"]))
    return path


@pytest.fixture(scope="module")
def embedded(data_file: Path) -> EmbeddedEngine:
    return EmbeddedEngine(REPO / "policies", data_file)


@pytest.fixture(scope="module")
def opa(data_file: Path) -> Iterator[OpaServer]:
    server = start_opa(data_file)
    yield server
    server.stop()


def _shape(d) -> dict:
    return {
        "allow": d.allow,
        "reason": d.reason,
        "secrets": sorted(d.secrets),
        "rules": sorted(d.rules),
    }


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_embedded_engine(embedded: EmbeddedEngine, case: dict) -> None:
    assert _shape(embedded.evaluate(case["input"])) == case["expect"]


def test_real_opa_server(opa: OpaServer) -> None:
    async def run() -> list[tuple[str, dict]]:
        engine = OpaEngine(opa.url, timeout=2.0)
        try:
            return [(c["name"], _shape(await engine.decide(c["input"]))) for c in CASES]
        finally:
            await engine.close()

    answers = asyncio.run(run())
    mismatches = [
        (name, got, case["expect"])
        for (name, got), case in zip(answers, CASES, strict=True)
        if got != case["expect"]
    ]
    assert mismatches == []


def test_engines_agree_on_default_and_missing_fields(embedded: EmbeddedEngine, opa) -> None:
    odd_inputs = [
        {},
        {"agent": {"user": "alice@example.com", "name": "triage-bot"}},
        {"agent": {"user": "alice@example.com", "name": "triage-bot"}, "phase": "request"},
        {
            "agent": {"user": "alice@example.com", "name": "triage-bot"},
            "phase": "request",
            "request": {"host": "api.github.com"},
        },
        {
            "agent": {"user": "alice@example.com", "name": "triage-bot"},
            "phase": "request",
            "request": {
                "host": "api.github.com",
                "port": "443",
                "scheme": "https",
                "method": "GET",
                "path": "/repos/o/r",
            },
        },
    ]

    async def run() -> list[dict]:
        engine = OpaEngine(opa.url, timeout=2.0)
        try:
            return [_shape(await engine.decide(i)) for i in odd_inputs]
        finally:
            await engine.close()

    from_opa = asyncio.run(run())
    from_embedded = [_shape(embedded.evaluate(i)) for i in odd_inputs]
    assert from_embedded == from_opa
    assert not any(d["allow"] for d in from_opa)
