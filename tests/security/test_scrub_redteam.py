"""Red-team leak findings L1, L2, L4, L5, L6 (/work/lab/FINDINGS.md), replayed over the wire.

Each case is the attack as the red team ran it: the agent sends a placeholder, the proxy swaps
the real value in, a real TLS origin (HTTP/1.1, or HTTP/2 through the ``h2`` library) hands the
value back in a place the scrubber did not look (the reason phrase, a transfer-coding, a
compression container's metadata, a non-UTF-8 charset, GOAWAY debug data), and the test decodes
what the agent received the way a client would and asserts the value is in none of it. Each
class also has a clean case, so a fix cannot just refuse every such answer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.conftest import GITHUB_VALUE
from tests.support.scrub_env import SPECIAL_VALUE, ScrubEnv, start_scrub_env
from tests.support.views import decoded_body, leaks
from tests.support.wire import Got, request, tls_tunnel

pytestmark = pytest.mark.e2e

VALUES = {"github": GITHUB_VALUE, "special": SPECIAL_VALUE}
SECRETS = ["github", "special"]
PROTOCOLS = [pytest.param(False, id="http1"), pytest.param(True, id="http2")]


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("scrub-redteam"))
    yield e
    e.close()


def respond(env: ScrubEnv, world, spec: dict, *, port: int, http2: bool, secret: str) -> Got:
    body = json.dumps(spec).encode()
    headers = {"X-Secret": env.placeholders[secret], "Content-Type": "application/json"}
    if http2:  # the proxy passes an HTTP/2 body to an HTTP/1.1 origin only with a length
        headers["Content-Length"] = str(len(body))
    return request(env.proxy, world.alice, port, "POST", "/api/respond", headers, body, http2=http2)


def needles(value: str) -> set[bytes]:
    """The value's bytes as an origin may write them: UTF-8, or latin-1 in an HTTP/1 head."""
    out = {value.encode()}
    with contextlib.suppress(UnicodeEncodeError):
        out.add(value.encode("latin-1"))
    return out


def holds(blob: bytes, value: str) -> bool:
    return any(n in blob for n in needles(value))


def assert_refused_or(got: Got, reason: str) -> None:
    """A refusal must be a 502; the proxy's own carries the given reason code (mitmproxy's
    parser refuses some transfer-codings itself, before any addon: its 502 names none)."""
    assert got.status == 502, (got.status, got.body[:300])
    assert got.header("x-egress-reason") in (reason, None)


# -- L1: the HTTP/1 status line's reason phrase --------------------------------------------------
REASONS = ["{secret}", "OK {secret}", "{secret|b64}", "{secret|pct}", "{secret|b64_bearer}"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_l1_reason_phrase_never_carries_the_value(
    env: ScrubEnv, world, secret: str, reason: str, mode: str
) -> None:
    spec = {"reason": reason, "body": "fine", "ctype": "text/plain", "mode": mode}
    got = respond(env, world, spec, port=env.h1.port, http2=False, secret=secret)
    assert not holds(got.reason, VALUES[secret]), got.reason
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
    assert got.status == 200 and got.body == b"fine"


@pytest.mark.parametrize("secret", SECRETS)
def test_l1_reason_phrase_value_is_not_sent_over_http2_either(
    env: ScrubEnv, world, secret: str
) -> None:
    """An HTTP/2 agent of the same HTTP/1.1 origin: HTTP/2 has no reason phrase to leak in."""
    spec = {"reason": "{secret}", "body": "fine", "ctype": "text/plain"}
    got = respond(env, world, spec, port=env.h1.port, http2=True, secret=secret)
    assert got.status == 200 and got.body == b"fine"
    assert not leaks(got, VALUES[secret])


def upgrade(env: ScrubEnv, world, reason: str, secret: str) -> bytes:
    """A WebSocket upgrade by hand over an HTTP/1.1 tunnel: the raw answer head."""
    sock = tls_tunnel(env.proxy, world.alice, env.h1.port, "http/1.1")
    key = base64.b64encode(b"redteam-l1-key!!").decode()
    head = (
        f"GET /api/ws?reason={quote(reason)} HTTP/1.1\r\nHost: localhost:{env.h1.port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nX-Secret: {env.placeholders[secret]}\r\n\r\n"
    )
    try:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError):
        pass
    finally:
        sock.close()
    return data.partition(b"\r\n\r\n")[0]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("reason", ["{secret}", "Switching {secret}", "{secret|b64}"])
def test_l1_websocket_101_reason_phrase_never_carries_the_value(
    env: ScrubEnv, world, secret: str, reason: str
) -> None:
    head = upgrade(env, world, reason, secret)
    status_line = head.split(b"\r\n")[0]
    got = Got(int(status_line.split(b" ")[1]), [], b"", reason=status_line)
    assert not holds(head, VALUES[secret]), head
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])


def test_l1_websocket_clean_101_passes(env: ScrubEnv, world) -> None:
    head = upgrade(env, world, "Switching Protocols", "github")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head


@pytest.mark.parametrize("reason", ["OK", "Created Just Fine", "Non-Authoritative Information"])
def test_l1_clean_reason_phrase_passes(env: ScrubEnv, world, reason: str) -> None:
    spec = {"reason": reason, "body": "fine", "ctype": "text/plain"}
    got = respond(env, world, spec, port=env.h1.port, http2=False, secret="github")
    assert got.status == 200 and got.body == b"fine"
    assert got.reason == reason.encode()


# -- L4: Transfer-Encoding: gzip, chunked --------------------------------------------------------
def undo_all(body: bytes) -> list[bytes]:
    """Every layer a client could peel off: gzip or deflate, repeatedly (curl --tr-encoding)."""
    out = [body]
    for _ in range(4):
        blob = out[-1]
        for undo in (gzip.decompress, zlib.decompress, lambda b: zlib.decompress(b, -15)):
            with contextlib.suppress(OSError, EOFError, zlib.error):
                out.append(undo(blob))
                break
        else:
            break
    return out


TE_STACKS = [["gzip"], ["deflate"], ["gzip", "gzip"]]
TE_BODIES = ["token={secret}\n", '{"echo": "{secret|json}"}', "data: {secret}\n\n" * 3]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("te", TE_STACKS, ids=",".join)
@pytest.mark.parametrize("body", TE_BODIES, ids=["text", "json", "events"])
def test_l4_transfer_coding_is_refused_or_decoded_and_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, te: list[str], body: str
) -> None:
    spec = {"body": body, "te": te, "ctype": "text/plain", "chunk": 9}
    got = respond(env, world, spec, port=env.h1.port, http2=http2, secret=secret)
    for blob in undo_all(got.body):
        assert not holds(blob, VALUES[secret]), blob[:200]
    assert not leaks(got, VALUES[secret])
    if got.status != 200:
        assert_refused_or(got, "response_undecodable")
        if got.header("x-egress-reason"):
            event = env.proxy.event_for(got.header("x-egress-decision-id") or "")
            assert event["result"]["reason"] == "response_undecodable"
        else:  # mitmproxy's own 502: its event names the upstream failure
            event = env.proxy.wait_events(1)[-1]
            assert event["status"] == 502 and event["result"]["upstream"], event
    else:  # decoded, scrubbed, and no longer labelled with a coding the agent cannot undo
        assert "gzip" not in (got.header("transfer-encoding") or "")
        assert env.placeholders[secret].encode() in got.body


@pytest.mark.parametrize("http2", PROTOCOLS)
def test_l4_clean_chunked_answer_passes(env: ScrubEnv, world, http2: bool) -> None:
    spec = {"body": "plain chunks " * 20, "mode": "chunked", "chunk": 9, "ctype": "text/plain"}
    got = respond(env, world, spec, port=env.h1.port, http2=http2, secret="github")
    assert got.status == 200 and got.complete and got.body == b"plain chunks " * 20


# -- L6: the value in a compression container's metadata ----------------------------------------
CONTAINERS = ["gzip-fname", "gzip-fcomment", "gzip-fextra", "zstd-skippable", "br-metadata"]
CLEAN_BODY = "data: ok\n\n"


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_l6_container_metadata_never_reaches_the_agent(
    env: ScrubEnv, world, http2: bool, secret: str, container: str, stream: bool
) -> None:
    spec: dict = {"body": CLEAN_BODY, "container": container, "ctype": "text/plain"}
    if stream:
        spec.update(mode="chunked", ctype="text/event-stream", chunk=5)
    got = respond(env, world, spec, port=env.port(http2), http2=http2, secret=secret)
    assert not holds(got.body, VALUES[secret]), got.body[:200]
    assert not leaks(got, VALUES[secret])
    if got.status == 200:
        assert got.complete and decoded_body(got) == CLEAN_BODY.encode()
    else:
        assert_refused_or(got, "response_undecodable")


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("coding", ["gzip", "zstd", "br"])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_l6_clean_compressed_body_passes(
    env: ScrubEnv, world, http2: bool, coding: str, stream: bool
) -> None:
    spec: dict = {"body": CLEAN_BODY * 5, "codings": [coding], "ctype": "text/plain"}
    if stream:
        spec.update(mode="chunked", ctype="text/event-stream", chunk=5)
    got = respond(env, world, spec, port=env.port(http2), http2=http2, secret="github")
    assert got.status == 200 and got.complete
    assert decoded_body(got) == CLEAN_BODY.encode() * 5


# -- L2: bodies in UTF-16, UTF-32, UTF-7, EBCDIC --------------------------------------------------
JSON_BODY = '{"token": "{secret|json}"}'
TEXT_BODY = "token={secret}\n"
# (id, content type, codec the origin encodes with, template, codings)
CHARSETS = [
    ("json-utf16be", "application/json", "utf-16-be", JSON_BODY, []),
    ("json-utf16le", "application/json", "utf-16-le", JSON_BODY, []),
    ("json-utf16-bom", "application/json", "utf-16", JSON_BODY, []),
    ("json-utf32", "application/json", "utf-32", JSON_BODY, []),
    ("json-utf32be", "application/json", "utf-32-be", JSON_BODY, []),
    ("json-utf32le", "application/json", "utf-32-le", JSON_BODY, []),
    ("json-charset-utf16", "application/json; charset=utf-16", "utf-16", JSON_BODY, []),
    ("text-utf16", "text/plain; charset=utf-16", "utf-16", TEXT_BODY, []),
    ("text-utf16be", "text/plain; charset=UTF-16BE", "utf-16-be", TEXT_BODY, []),
    ("text-utf32", "text/plain; charset=utf-32", "utf-32", TEXT_BODY, []),
    ("text-cp500", "text/plain; charset=cp500", "cp500", TEXT_BODY, []),
    ("html-cp500", "text/html; charset=IBM500", "cp500", TEXT_BODY, []),
    ("text-utf7", "text/plain; charset=utf-7", "utf-7", TEXT_BODY, []),
    ("text-utf16-gzip", "text/plain; charset=utf-16", "utf-16", TEXT_BODY, ["gzip"]),
    ("json-utf16le-gzip", "application/json", "utf-16-le", JSON_BODY, ["gzip"]),
]
CLIENT_CODECS = ["utf-8", "utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be"]
CLIENT_CODECS += ["utf-32-le", "cp500", "utf-7", "latin-1"]


def client_texts(got: Got) -> list[str]:
    """What ``r.text`` / ``r.json()`` can return: the body decoded per its charset, per JSON
    auto-detection (``json.loads(bytes)``), and per every codec named in these findings."""
    body = decoded_body(got)
    texts = []
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        texts.append(json.dumps(json.loads(body), ensure_ascii=False))
    ctype = (got.header("content-type") or "").lower()
    named = [p.split("=", 1)[1].strip('" ') for p in ctype.split(";") if "charset=" in p]
    for codec in named + CLIENT_CODECS:
        with contextlib.suppress(LookupError, UnicodeDecodeError):
            texts.append(body.decode(codec))
    return texts


def charset_spec(ctype: str, codec: str, body: str, codings: list[str], stream: bool) -> dict:
    spec = {"body": body, "ctype": ctype, "charset": codec, "codings": codings}
    if stream:
        spec.update(mode="chunked", chunk=6)
    return spec


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("ctype", "codec", "body", "codings"), [c[1:] for c in CHARSETS],
                         ids=[c[0] for c in CHARSETS])  # fmt: skip
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_l2_non_utf8_body_is_scrubbed_as_the_client_decodes_it(
    env: ScrubEnv,
    world,
    http2: bool,
    secret: str,
    ctype: str,
    codec: str,
    body: str,
    codings: list[str],
    stream: bool,
) -> None:
    spec = charset_spec(ctype, codec, body, codings, stream)
    got = respond(env, world, spec, port=env.port(http2), http2=http2, secret=secret)
    for text in client_texts(got):
        assert VALUES[secret] not in text, text[:200]
    assert not leaks(got, VALUES[secret])
    if got.status != 200:
        assert got.status == 502 and got.header("x-egress-reason")


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize(("ctype", "codec", "body", "codings"), [c[1:] for c in CHARSETS],
                         ids=[c[0] for c in CHARSETS])  # fmt: skip
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_l2_clean_non_utf8_body_passes_intact(
    env: ScrubEnv, world, http2: bool, ctype: str, codec: str, body: str, codings: list[str],
    stream: bool,
) -> None:  # fmt: skip
    clean = body.replace("{secret|json}", "nothing here").replace("{secret}", "nothing here")
    spec = charset_spec(ctype, codec, clean, codings, stream)
    got = respond(env, world, spec, port=env.port(http2), http2=http2, secret="github")
    assert got.status == 200 and got.complete
    # read as a client does: by the charset it is told (a streamed body may come transcoded
    # to utf-8 and say so), else by what the bytes show (json.detect_encoding: BOM, NULs)
    body = decoded_body(got)
    told = re.search(r'charset="?([^";\s]+)', got.header("content-type") or "", re.I)
    assert body.decode(told.group(1) if told else json.detect_encoding(body)) == clean


# -- N1 (round 2): the bytes as they came are a view too ----------------------------------------
# A body that looks UTF-16/32/EBCDIC (a NUL near the start, a byte-order mark, a charset label)
# but holds the value as plain ASCII: clients that ignore the label (curl, Node, r.content)
# read the ASCII, and a transcoded stream can be turned back into those bytes.
RAW_VIEW = [
    ("nul-then-ascii-text", "text/plain", "a\x00token={secret}\n"),
    ("nul01-then-ascii-json", "application/json", "\x00\x01{secret}"),
    ("nul-then-ascii-no-ctype", "", "\x00{secret}\n"),
    ("label-utf16-ascii-body", "text/plain; charset=utf-16", "token={secret}\n"),
    ("label-utf16le-ascii-body", "text/plain; charset=utf-16le", "token={secret}\n"),
    ("label-utf32-ascii-body", "text/plain; charset=utf-32", "token={secret}\n"),
    ("label-cp500-ascii-body", "text/plain; charset=cp500", "token={secret}\n"),
    ("bom16-then-ascii", "text/plain", "\xff\xfetoken={secret}\n"),
    ("bom32-then-ascii", "application/json", "\xff\xfe\x00\x00token={secret}\n"),
]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(("ctype", "body"), [c[1:] for c in RAW_VIEW], ids=[c[0] for c in RAW_VIEW])
@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
def test_n1_ascii_value_in_a_body_that_looks_foreign_is_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, ctype: str, body: str, stream: bool
) -> None:
    # latin-1 turns the template's characters into exactly these bytes
    spec = charset_spec(ctype, "latin-1", body, [], stream)
    got = respond(env, world, spec, port=env.port(http2), http2=http2, secret=secret)
    assert got.status == 200 and got.complete  # scrubbed, not cut
    raw = decoded_body(got)
    assert VALUES[secret].encode() not in raw
    for text in client_texts(got):
        assert VALUES[secret] not in text, text[:200]
        # a transcoded answer turned back into the bytes it came as
        for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp500"):
            with contextlib.suppress(UnicodeError):
                assert VALUES[secret].encode() not in text.encode(codec)
    assert not leaks(got, VALUES[secret])


# -- N2 (round 2): a header mitmproxy's validation refuses is not quoted back -------------------
BAD_NAMES = ["X {secret}", "X{secret} ", "X\t{secret}", "X@{secret}", "({secret})", "X/{secret}"]


@pytest.mark.parametrize("http2", PROTOCOLS)
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(
    "name", BAD_NAMES, ids=["space", "trailing-space", "tab", "at", "paren", "slash"]
)
def test_n2_invalid_upstream_header_name_is_not_quoted_to_agent_or_log(
    env: ScrubEnv, world, http2: bool, secret: str, name: str
) -> None:
    before = len(env.proxy.events())
    spec = {"headers": [[name, "1"]], "body": "ok"}
    got = respond(env, world, spec, port=env.h1.port, http2=http2, secret=secret)
    assert got.status == 502  # mitmproxy refuses the answer (request smuggling guard)
    for blob in undo_all(got.body):
        assert not holds(blob, VALUES[secret]), blob[:300]
    assert not leaks(got, VALUES[secret])
    event = env.proxy.wait_events(before + 1)[-1]
    assert VALUES[secret] not in json.dumps(event)
    # the event says what the agent got: mitmproxy's 502, not the upstream's 200
    assert event["status"] == 502, event
    assert event["result"]["upstream"] == "upstream_protocol_error", event


# -- L5: HTTP/2 GOAWAY debug data -----------------------------------------------------------------
def hex_windows(value: str) -> set[bytes]:
    """Hex (both cases) of every 8-byte window of the value: what a hex dump would show."""
    raw = value.encode()
    out = set()
    for i in range(max(1, len(raw) - 7)):
        h = binascii.hexlify(raw[i : i + 8])
        out |= {h, h.upper()}
    return out


def goaway(env: ScrubEnv, world, secret: str, offset: int) -> tuple[Got, list[dict]]:
    before = len(env.proxy.events())
    got = respond(env, world, {"goaway": offset}, port=env.h2.port, http2=True, secret=secret)
    events = env.proxy.wait_events(before + 1)[before:]
    return got, events


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("offset", [0, 15])
def test_l5_goaway_debug_data_is_not_shown_to_agent_or_log(
    env: ScrubEnv, world, secret: str, offset: int
) -> None:
    got, events = goaway(env, world, secret, offset)
    assert got.status == 502, got
    value = VALUES[secret]
    answer = got.body + b"\n".join(v for _, v in got.headers)
    logged = json.dumps(events, ensure_ascii=False).encode()
    for where, blob in (("answer", answer), ("decision log", logged)):
        assert not holds(blob, value), (where, blob[:300])
        found = [h for h in hex_windows(value) if h in blob]
        assert not found, (where, found, blob[:300])
    assert events and events[-1]["status"] == 502  # the answer the agent got has its event
    assert not leaks(got, value)


@pytest.mark.parametrize("secret", SECRETS)
def test_l5_clean_http2_answer_passes(env: ScrubEnv, world, secret: str) -> None:
    spec = {"body": "fine over h2", "ctype": "text/plain"}
    got = respond(env, world, spec, port=env.h2.port, http2=True, secret=secret)
    assert got.status == 200 and got.complete and got.body == b"fine over h2"
