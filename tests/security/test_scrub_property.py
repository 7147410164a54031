"""Property (issue 13): whatever shape an answer takes, the agent never reads the real value.

Hypothesis generates answers from a real TLS origin (HTTP/1.1 or HTTP/2 through the ``h2``
library): the swapped value placed in random headers, body segments and HTTP/2 trailers, each
in a random encoding, under a random stack of content-codings, framed with a content length or
in chunks of random size, buffered or streamed. Every decoding a client may apply to what came
back must be free of the value. ``HYPOTHESIS_PROFILE=deep`` runs many more examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import GITHUB_VALUE
from tests.support.responder import ENCODERS
from tests.support.scrub_env import SPECIAL_VALUE, ScrubEnv, start_scrub_env
from tests.support.views import decoded_body, leaks
from tests.support.wire import request

pytestmark = pytest.mark.e2e

VALUES = {"github": GITHUB_VALUE, "special": SPECIAL_VALUE}
HEADER_SAFE = [e for e in ENCODERS if not e.startswith(("mime", "pem"))]
FILLER = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="{}"),
    max_size=40,
)


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("scrub-property"))
    yield e
    e.close()


@st.composite
def answers(draw: st.DrawFn) -> tuple[bool, str, dict]:
    http2 = draw(st.booleans())
    secret = draw(st.sampled_from(sorted(VALUES)))
    names = ["X-Echo", "Set-Cookie", "Location", "X-Other"]
    headers = draw(
        st.lists(
            st.tuples(st.sampled_from(names), st.sampled_from(HEADER_SAFE), FILLER), max_size=3
        )
    )
    segments = draw(
        st.lists(st.one_of(FILLER, st.sampled_from(list(ENCODERS))), min_size=1, max_size=6)
    )
    body = "".join(s if s not in ENCODERS else "{secret|" + s + "}" for s in segments)
    stream = draw(st.booleans())
    spec: dict = {
        "status": draw(st.sampled_from([200, 200, 302])),
        "headers": [[n, p.strip() + "{secret|" + e + "}"] for n, e, p in headers],
        "body": body,
        "codings": draw(
            st.lists(st.sampled_from(["gzip", "deflate", "deflate-raw", "br", "zstd"]), max_size=3)
        ),
        "mode": draw(st.sampled_from(["length", "chunked"])),
        "chunk": draw(st.integers(min_value=1, max_value=64)),
        "ctype": "text/event-stream" if stream else "application/json",
    }
    if http2:
        spec["trailers"] = [
            [n, "{secret|" + e + "}"]
            for n, e in draw(
                st.lists(
                    st.tuples(
                        st.sampled_from(["grpc-message", "x-trailer"]), st.sampled_from(HEADER_SAFE)
                    ),
                    max_size=2,
                    unique_by=lambda t: t[0],
                )
            )
        ]
    return http2, secret, spec


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(case=answers())
def test_no_generated_answer_carries_the_real_value(env: ScrubEnv, world, case) -> None:
    http2, secret, spec = case
    headers = {"X-Secret": env.placeholders[secret], "Content-Type": "application/json"}
    got = request(
        env.proxy, world.alice, env.port(http2), "POST", "/api/respond",
        headers, json.dumps(spec).encode(), http2=http2,
    )  # fmt: skip
    assert got.status == spec["status"], got
    assert got.complete
    assert not leaks(got, VALUES[secret]), (spec, leaks(got, VALUES[secret]))
    if "{secret" not in spec["body"]:
        assert decoded_body(got) == spec["body"].encode()
