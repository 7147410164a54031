"""An HTTP/2 agent's request body reaches an HTTP/1.1 upstream framed, never as a new request.

Found while writing the red-team regressions: an HTTP/2 request whose body comes without a
``content-length`` is forwarded to an HTTP/1.1 origin with neither ``Content-Length`` nor
``Transfer-Encoding``, so the origin reads the body as the next request on the connection.
A body that *is* a request is then served without any policy decision: a path, method or
host the agent's rules do not allow (request smuggling). The origin records every request it
parses, so the test sees exactly what left the proxy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.origin import Seen
from tests.support.scrub_env import ScrubEnv, start_scrub_env
from tests.support.wire import request

pytestmark = pytest.mark.e2e

SMUGGLED = [
    pytest.param("GET /admin/area HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n", id="path"),
    pytest.param("DELETE /api/respond HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n", id="method"),
    pytest.param("GET /api/read?key=k HTTP/1.1\r\nHost: other.test\r\n\r\n", id="host"),
    pytest.param(
        "POST /api/store?key=evil HTTP/1.1\r\nHost: localhost:{port}\r\n"
        "Content-Length: 5\r\n\r\nowned",
        id="post-with-body",
    ),
    pytest.param("GET /admin/area HTTP/1.0\r\n\r\n", id="http10"),
]


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("h2-framing"))
    yield e
    e.close()


def store(
    env: ScrubEnv, world, key: str, body: bytes, headers: dict[str, str]
) -> tuple[int, list[Seen]]:
    before = len(env.h1.seen)
    got = request(
        env.proxy, world.alice, env.h1.port, "POST", f"/api/store?key={key}",
        headers, body, http2=True,
    )  # fmt: skip
    time.sleep(0.5)  # a smuggled request is parsed after the first answer went out
    return got.status, env.h1.seen[before:]


@pytest.mark.parametrize("smuggled", SMUGGLED)
@pytest.mark.parametrize("ctype", ["text/plain", "application/octet-stream"])
def test_h2_body_without_length_is_not_a_second_upstream_request(
    env: ScrubEnv, world, smuggled: str, ctype: str
) -> None:
    key = f"smuggle-{len(env.h1.seen)}"
    body = smuggled.format(port=env.h1.port).encode()
    status, seen = store(env, world, key, body, {"Content-Type": ctype})
    assert [(s.method, s.path) for s in seen] == [("POST", f"/api/store?key={key}")]
    assert status == 201
    assert env.h1.responder.stored[key] == body  # the body arrived whole, as a body


@pytest.mark.parametrize("size", [1, 100, 16_000])
@pytest.mark.parametrize("with_length", [False, True], ids=["no-length", "length"])
def test_h2_body_arrives_whole_at_an_http1_origin(
    env: ScrubEnv, world, size: int, with_length: bool
) -> None:
    key = f"plain-{size}-{with_length}"
    body = bytes(i % 251 for i in range(size))
    headers = {"Content-Type": "application/octet-stream"}
    if with_length:
        headers["Content-Length"] = str(size)
    status, seen = store(env, world, key, body, headers)
    assert status == 201 and len(seen) == 1
    assert env.h1.responder.stored[key] == body
