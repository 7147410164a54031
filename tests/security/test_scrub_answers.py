"""Issue 13, items 1-5: an answer never carries a real secret value of the agent it goes to.

Each case is the attack over real sockets: the agent sends a placeholder, the proxy swaps the
real value in, a real TLS origin (HTTP/1.1, or HTTP/2 through the ``h2`` library) echoes it
back, and every way a client could decode the answer must be free of the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import GITHUB_VALUE, OPENAI_VALUE
from tests.support.scrub_env import SPECIAL_VALUE, ScrubEnv, start_scrub_env
from tests.support.views import decoded_body, leaks
from tests.support.wire import Got, request

pytestmark = pytest.mark.e2e

VALUES = {"github": GITHUB_VALUE, "special": SPECIAL_VALUE}
PROTOCOLS = [pytest.param(False, id="http1"), pytest.param(True, id="http2")]


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("scrub-answers"))
    yield e
    e.close()


def respond(env: ScrubEnv, world, spec: dict, *, http2: bool, secret: str = "github") -> Got:  # noqa: S107
    headers = {"X-Secret": env.placeholders[secret], "Content-Type": "application/json"}
    body = json.dumps(spec).encode()
    return request(
        env.proxy, world.alice, env.port(http2), "POST", "/api/respond", headers, body, http2=http2
    )


def streamed(spec: dict, http2: bool) -> dict:
    """An answer the proxy streams: chunked over HTTP/1.1, an event stream over HTTP/2."""
    return {**spec, "mode": "chunked", "ctype": "text/event-stream", "chunk": 5}


def assert_clean(got: Got, *values: str) -> None:
    assert got.status == 200, got
    for value in values or tuple(VALUES.values()):
        assert not leaks(got, value), leaks(got, value)


# -- item 1: headers of streamed answers, sent before the body ---------------------------------
HEADER_ECHOES = [
    pytest.param(200, [["X-Echo", "{secret}"]], id="x-header"),
    pytest.param(200, [["Set-Cookie", "session={secret|pct}; Path=/; HttpOnly"]], id="set-cookie"),
    pytest.param(302, [["Location", "https://example.test/cb?token={secret|pct}"]], id="location"),
    pytest.param(200, [["X-Auth-Echo", "Basic {secret|b64_bearer}"]], id="base64-header"),
    pytest.param(200, [["X-{secret}", "name"]], id="header-name"),
]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", ["github", "special"])
@pytest.mark.parametrize(("status", "headers"), HEADER_ECHOES)
def test_streamed_answer_headers_are_scrubbed_before_they_are_sent(
    env: ScrubEnv, world, http2: bool, secret: str, status: int, headers: list
) -> None:
    if headers[0][0] == "X-{secret}" and (secret == "special" or http2):
        pytest.skip("a header name cannot hold these characters (HTTP/2: upper case)")
    spec = streamed({"status": status, "headers": headers, "body": "data: ok\n\n"}, http2)
    got = respond(env, world, spec, http2=http2, secret=secret)
    assert got.status == status
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
    assert got.complete and b"data: ok" in got.body


# -- item 2: compressed streamed bodies --------------------------------------------------------
CODINGS = ["gzip", "deflate", "deflate-raw", "br", "zstd"]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("secret", ["github", "special"])
def test_compressed_streamed_body_is_decoded_then_scrubbed(
    env: ScrubEnv, world, http2: bool, coding: str, secret: str
) -> None:
    body = "data: one\n\ndata: token={secret} b64={secret|b64}\n\ndata: three\n\n" * 3
    got = respond(env, world, streamed({"body": body, "codings": [coding]}, http2), http2=http2)
    assert_clean(got)
    assert got.complete and decoded_body(got).count(b"data: three") == 3


# -- item 3: stacked codings, buffered and streamed; undecodable ones refused ------------------
STACKS = [["gzip", "gzip"], ["deflate", "gzip"], ["br", "gzip"], ["gzip", "zstd", "br"]]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("stack", STACKS, ids=",".join)
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_stacked_codings_are_all_decoded_then_scrubbed(
    env: ScrubEnv, world, http2: bool, stack: list[str], stream: bool
) -> None:
    spec = {"body": '{"echo": "{secret|json}", "again": "{secret}"}', "codings": stack}
    if stream:
        spec = streamed(spec, http2)
    got = respond(env, world, spec, http2=http2)
    assert_clean(got)
    assert json.loads(decoded_body(got))["again"] == env.placeholders["github"]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("stack", [["bogus"], ["gzip", "corrupt"], ["gzip", "bogus", "gzip"]])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_undecodable_coding_is_refused_with_a_reason(
    env: ScrubEnv, world, http2: bool, stack: list[str], stream: bool
) -> None:
    spec = {"body": "data: {secret}\n\n" * 4, "codings": stack}
    if stream:
        spec = streamed(spec, http2)
    got = respond(env, world, spec, http2=http2)
    assert not leaks(got, GITHUB_VALUE)
    if got.status == 200:
        # only a stream whose bytes turn bad after its headers went out: cut, never completed
        assert stream and "corrupt" in stack and not got.complete
    else:
        assert got.status == 502
        assert got.header("x-egress-reason") == "response_undecodable"
        assert json.loads(got.body)["reason"] == "response_undecodable"
    event = env.proxy.event_for(got.header("x-egress-decision-id") or "")
    assert event["result"]["reason"] == "response_undecodable"
    assert event["result"]["allow"] is False


@pytest.mark.parametrize("http2", PROTOCOLS)
def test_clean_compressed_answer_goes_out_decoded(env: ScrubEnv, world, http2: bool) -> None:
    """Nothing to hide in the decoded bytes, yet the answer goes out decoded: what the agent
    receives is exactly what was checked (a container can carry bytes its decoder skips)."""
    got = respond(
        env, world, {"body": "nothing secret here " * 50, "codings": ["gzip"]}, http2=http2
    )
    assert got.status == 200 and got.header("content-encoding") is None
    assert got.body == b"nothing secret here " * 50


# -- item 4: HTTP/2 trailers -----------------------------------------------------------------
TRAILERS = [
    [["grpc-message", "{secret|pct}"]],
    [["grpc-status-details-bin", "{secret|b64}"], ["grpc-status", "0"]],
    [["x-echo-trailer", "{secret}"]],
]


@pytest.mark.parametrize("trailers", TRAILERS, ids=lambda t: t[0][0])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
@pytest.mark.parametrize("secret", ["github", "special"])
def test_http2_trailers_are_scrubbed(
    env: ScrubEnv, world, trailers: list, stream: bool, secret: str
) -> None:
    spec = {"body": "grpc body", "trailers": trailers, "ctype": "application/grpc"}
    if stream:
        spec = streamed(spec, True)
    got = respond(env, world, spec, http2=True, secret=secret)
    assert got.status == 200 and got.complete
    assert got.trailers, "the trailers are passed on"
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])


# -- item 5: store, then read back on a flow that swapped nothing ----------------------------
@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", ["github", "special"])
@pytest.mark.parametrize(
    "read", ["mode=length", "mode=chunked&ctype=text/event-stream", "coding=gzip,gzip"]
)
def test_stored_value_read_back_without_placeholder_is_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, read: str
) -> None:
    key = f"{secret}-{int(http2)}-{read.split('=')[1].split('&')[0]}"
    port, ph = env.port(http2), env.placeholders[secret]
    stored = request(
        env.proxy, world.alice, port, "POST", f"/api/store?key={key}",
        {"Content-Type": "text/plain"}, f"note: {ph}".encode(), http2=http2,
    )  # fmt: skip
    assert stored.status == 201
    assert env.responder(http2).stored[key] == f"note: {VALUES[secret]}".encode()  # swapped
    got = request(env.proxy, world.alice, port, "GET", f"/api/read?key={key}&{read}", http2=http2)
    assert_clean(got, VALUES[secret])
    assert ph.encode() in decoded_body(got)
    event = env.proxy.event_for(got.header("x-egress-decision-id") or "")
    assert event.get("secrets") in (None, [])  # this flow swapped nothing


@pytest.mark.parametrize("http2", PROTOCOLS)
def test_secret_bound_elsewhere_is_scrubbed_too(env: ScrubEnv, world, http2: bool) -> None:
    """Alice's openai key is bound to another host and never sent here; an upstream that holds
    it anyway (stored earlier, leaked elsewhere) cannot hand it to her agent."""
    key = f"openai-{http2}"
    env.responder(http2).stored[key] = f"leaked: {OPENAI_VALUE}".encode()
    got = request(
        env.proxy, world.alice, env.port(http2), "GET", f"/api/read?key={key}", http2=http2
    )
    assert_clean(got, OPENAI_VALUE)
    assert env.placeholders["openai"].encode() in got.body


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("encoding", ["plain", "pct", "json_u", "b64"])
def test_streamed_answer_with_a_length_stays_well_framed(
    env: ScrubEnv, world, http2: bool, encoding: str
) -> None:
    """A streamed answer declaring Content-Length whose scrubbed body is shorter or longer:
    the client still gets a complete, correctly framed answer (found by the property test)."""
    body = "data: {secret|" + encoding + "}\n\n"
    spec = {"body": body, "mode": "length", "ctype": "text/event-stream"}
    got = respond(env, world, spec, http2=http2, secret="special")
    assert got.status == 200 and got.complete
    assert not leaks(got, SPECIAL_VALUE)
    assert got.body.startswith(b"data: ") and got.body.endswith(b"\n\n")


@pytest.mark.parametrize("trailers", TRAILERS, ids=lambda t: t[0][0])
@pytest.mark.parametrize("secret", ["github", "special"])
def test_http1_trailers_never_carry_the_value(
    env: ScrubEnv, world, trailers: list, secret: str
) -> None:
    """An HTTP/1.1 origin ending a chunked answer with trailers that echo the value: the agent
    gets the whole body and never the value (the proxy drops HTTP/1 trailers)."""
    spec = {"body": "chunked body", "trailers": trailers, "mode": "chunked", "chunk": 4}
    got = respond(env, world, spec, http2=False, secret=secret)
    assert got.status == 200 and got.complete and got.body == b"chunked body"
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
