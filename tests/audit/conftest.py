"""A real decision log, written by a real proxy, rotated and gzipped along the way."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import World
from tests.support.clients import http_client
from tests.support.proxy import proxy_for


@dataclass
class RealLog:
    dir: Path
    live: Path
    answered: list[tuple[str, int, str]]  # (decision id, status, path)
    key: Path  # the chain key the proxy generated in its state dir
    anchors: Path  # where it shipped its anchors (--log-anchor), outside the log dir

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.dir, dest)
        return dest / self.live.name


@pytest.fixture(scope="session")
def real_log(world: World, tmp_path_factory) -> Iterator[RealLog]:
    root = tmp_path_factory.mktemp("real-log")
    logs = root / "logs"
    p = proxy_for(
        world,
        root,
        "--decision-log",
        str(logs / "decisions.log"),
        "--log-max-bytes",
        "6000",
        "--log-compress",
        "true",
        "--log-anchor",
        str(root / "anchors.jsonl"),
    )
    answered: list[tuple[str, int, str]] = []
    ph = world.placeholders["github"]
    with http_client(p, world.alice) as c:
        for i in range(24):
            path = ["/api/items", "/admin", "/api/search?q=secret-ish"][i % 3] + f"{i}"
            headers = {"Authorization": f"Bearer {ph}"} if i % 4 == 0 else {}
            r = c.request(
                "DELETE" if i % 5 == 4 else "GET", f"{world.origin.url}{path}", headers=headers
            )
            answered.append((r.headers["x-egress-decision-id"], r.status_code, path))
    with http_client(p, world.bob) as c:
        r = c.get(f"{world.origin.url}/bob-path")
        answered.append((r.headers["x-egress-decision-id"], r.status_code, "/bob-path"))
    assert p.stop() == 0
    time.sleep(0.2)  # let the background gzip of the last rotation finish
    yield RealLog(
        logs, logs / "decisions.log", answered, root / "state" / "log.key", root / "anchors.jsonl"
    )
