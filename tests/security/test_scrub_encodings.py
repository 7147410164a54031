"""Issue 13, item 7: every encoding a client decodes is scrubbed, in bodies and headers.

The origin writes the swapped value in one encoding (``tests.support.responder.ENCODERS``):
JSON ``\\uXXXX`` escapes (all characters, upper- or lower-case hex, every other character,
Go's ``\\u0026 \\u003c \\u003e``, ASCII-only), ``\\/``, percent-encoding with lower-case hex,
base64 at every alignment and MIME/PEM-wrapped at 76 and 64 columns with CRLF or LF at any
offset, or wrapped with JSON-escaped line breaks (as file-content APIs answer). The agent's
view, decoded every way a client could (``tests.support.views``), must not hold the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import GITHUB_VALUE
from tests.support.responder import ENCODERS
from tests.support.scrub_env import SPECIAL_VALUE, ScrubEnv, start_scrub_env
from tests.support.views import leaks
from tests.support.wire import request

pytestmark = pytest.mark.e2e

VALUES = {"github": GITHUB_VALUE, "special": SPECIAL_VALUE}
PROTOCOLS = [pytest.param(False, id="http1"), pytest.param(True, id="http2")]
# encodings that hold no line break, so they can travel in a header
HEADER_SAFE = [e for e in ENCODERS if not e.startswith(("mime", "pem"))]


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("scrub-encodings"))
    yield e
    e.close()


def _ask(env: ScrubEnv, world, spec: dict, secret: str, http2: bool):
    headers = {"X-Secret": env.placeholders[secret], "Content-Type": "application/json"}
    body = json.dumps(spec).encode()
    port = env.port(http2)
    return request(env.proxy, world.alice, port, "POST", "/api/respond", headers, body, http2=http2)


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", ["github", "special"])
@pytest.mark.parametrize("encoding", list(ENCODERS))
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_body_encodings_are_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, encoding: str, stream: bool
) -> None:
    body = '{"before": 1, "value": "{secret|' + encoding + '}", "after": 2}\n'
    spec = {"body": body, "ctype": "application/json"}
    if stream:
        spec.update(mode="chunked", ctype="application/x-ndjson", chunk=9)
    got = _ask(env, world, spec, secret, http2)
    assert got.status == 200 and got.complete
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
    assert b'"before": 1' in got.body and b'"after": 2' in got.body  # the rest is intact


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", ["github", "special"])
@pytest.mark.parametrize("encoding", HEADER_SAFE)
def test_header_encodings_are_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, encoding: str
) -> None:
    spec = {"headers": [["X-Echo", "v={secret|" + encoding + "};"]], "body": "ok"}
    got = _ask(env, world, spec, secret, http2)
    assert got.status == 200
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
    assert (got.header("x-echo") or "").startswith("v=")
