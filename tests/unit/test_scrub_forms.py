"""The scrubber against every encoder, whole and streamed at every split point, and codings."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from egress.secrets.codings import Decoder, Undecodable, codings, decode_all
from egress.secrets.scrub import WITHHELD, scrub, scrub_pairs
from egress.secrets.stream import StreamScrubber
from tests.support.responder import ENCODERS
from tests.support.views import views
from tests.support.wire import Got

VALUES = [
    "ghs_REALVALUEnever2leave0the1proxy9XyZ",
    "sk/Live+Key=é&<v>1 2%~x9\"q'\\z",
    "emoji-🔑-key:with/slashes?and=query&x=1",
    "sk-live-???-??-?-0123456789abcdef",  # its base64 holds '/' (escaped as \/ in JSON)
]
PH = "egphPLACEHOLDERplaceholderPLACEHOLDER0123"


def _leaks(data: bytes, value: str) -> bool:
    return any(value.encode() in v for v in views(Got(200, [], data)))


@pytest.mark.parametrize("value", VALUES, ids=["token", "special", "emoji", "slashy"])
@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_every_encoding_is_scrubbed(value: str, encoding: str) -> None:
    form = ENCODERS[encoding](value).encode()
    data = b'{"a": "x", "v": "' + form + b'", "z": 1}'
    assert _leaks(data, value), "the test form must be readable before scrubbing"
    pairs = scrub_pairs([(value, PH)])
    out = scrub(data, pairs)
    assert not _leaks(out, value)
    # rewritten in place, in the form it had: the fallbacks (decoded text, withheld) unused
    assert not pairs.detect(pairs.values[0].fix(data))
    assert out.startswith(b'{"a": "x", "v": "') and out.endswith(b'", "z": 1}')
    assert out != WITHHELD


@pytest.mark.parametrize("value", VALUES, ids=["token", "special", "emoji", "slashy"])
@pytest.mark.parametrize(
    "encoding", ["plain", "json_u_mixed", "pct_lower", "mime76_crlf", "mime76_json", "b64_lead2"]
)
def test_stream_scrubber_every_split_point(value: str, encoding: str) -> None:
    body = b"data: " + ENCODERS[encoding](value).encode() + b"\n\nnext: ok\n"
    pairs = scrub_pairs([(value, PH)])
    for cut in range(1, len(body)):
        s = StreamScrubber(pairs)
        out = s.feed(body[:cut]) + s.feed(body[cut:]) + s.feed(b"")
        assert not _leaks(out, value), cut
        assert out.endswith(b"next: ok\n")


@pytest.mark.parametrize(
    "chunk", [b"data: hello\n\n", b'{"a": 1}\n', b"event: x\r\n\r\n", b"plain text line.\n\n"]
)
def test_stream_scrubber_does_not_hold_back_finished_lines(chunk: bytes) -> None:
    s = StreamScrubber(scrub_pairs([(VALUES[0], PH), (VALUES[1], PH + "2")]))
    assert s.feed(chunk) == chunk


def test_no_secret_means_same_object() -> None:
    """The cheap path returns the input untouched (no copy)."""
    data = b"nothing to see " * 1000
    assert scrub(data, scrub_pairs([(v, PH) for v in VALUES])) is data


STACKS = [["gzip"], ["gzip", "gzip"], ["deflate"], ["br", "zstd"], ["zstd", "gzip", "br"]]
_ENC = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize("stack", STACKS, ids=",".join)
@pytest.mark.parametrize("step", [1, 7, 4096])
def test_decoder_undoes_stacks_in_any_chunking(stack: list[str], step: int) -> None:
    body = b"line of text\n" * 500
    data = body
    for name in stack:
        data = _ENC[name](data)
    d = Decoder(codings([", ".join(stack)]))
    out = b"".join(d.feed(data[i : i + step]) for i in range(0, len(data), step)) + d.finish()
    assert out == body


@pytest.mark.parametrize(
    ("names", "data"),
    [
        (["compress"], b"x"),
        (["gzip"], b"not gzip at all"),
        (["gzip"], gzip.compress(b"abc" * 100)[:-6]),
        (["gzip"], gzip.compress(b"abc") + b"trailing junk"),
        (["deflate"], zlib.compress(b"abc") + b"more"),
        (["br"], b"\xff\xff\xff\xff"),
        (["zstd"], b"\x28\xb5\x2f\xfd garbage"),
    ],
)
def test_decoder_refuses_unknown_and_corrupt(names: list[str], data: bytes) -> None:
    with pytest.raises(Undecodable):
        decode_all(names, data)


@pytest.mark.parametrize("names", [["gzip"], ["br", "gzip"], ["zstd"], ["deflate"]])
def test_decoder_without_a_body_is_fine(names: list[str]) -> None:
    """HEAD, 204 and 304 answers carry a coding but no body: nothing to decode, no refusal."""
    assert Decoder(names).finish() == b""
