from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from egress.secrets.placeholders import CORE_RE, find_placeholders, mint_placeholder
from egress.secrets.scrub import StreamScrubber, scrub, scrub_pairs

VALUE = "sk-live+real/value=secret:0123456789"
PH = "sk-egph" + "A" * 40


def test_mint_and_find() -> None:
    a, b = mint_placeholder("ghp_"), mint_placeholder()
    assert a.startswith("ghp_egph") and a != b
    assert CORE_RE.fullmatch(b)
    assert find_placeholders(f"x {a} y {b}") == {a[4:], b}
    with pytest.raises(ValueError):
        mint_placeholder("bad prefix!")


@pytest.mark.parametrize(
    "form",
    [
        VALUE.encode(),
        quote(VALUE, safe="").encode(),
        base64.b64encode(VALUE.encode()),
        base64.urlsafe_b64encode(VALUE.encode()),
        base64.b64encode(b"Bearer " + VALUE.encode()),
        base64.b64encode(b"user:" + VALUE.encode()),
        base64.b64encode(b"ab" + VALUE.encode() + b"cd"),
        b'{"k":"' + VALUE.replace("/", "\\/").encode() + b'"}',
    ],
)
def test_every_form_is_scrubbed(form: bytes) -> None:
    out = scrub(b"prefix " + form + b" suffix", scrub_pairs([(VALUE, PH)]))
    assert VALUE.encode() not in out
    assert form not in out


def test_stream_scrubber_every_split_point() -> None:
    body = b"data: token=" + VALUE.encode() + b" and again " + VALUE.encode() + b"\n\n"
    pairs = scrub_pairs([(VALUE, PH)])
    expected = scrub(body, pairs)
    for cut in range(1, len(body)):
        s = StreamScrubber(pairs)
        out = s.feed(body[:cut]) + s.feed(body[cut:]) + s.feed(b"")
        assert out == expected, cut
        assert VALUE.encode() not in out


def test_stream_scrubber_does_not_delay_event_ends() -> None:
    s = StreamScrubber(scrub_pairs([(VALUE, PH)]))
    assert s.feed(b"data: hello\n\n") == b"data: hello\n\n"
