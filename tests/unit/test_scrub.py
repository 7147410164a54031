from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from egress.secrets.placeholders import CORE_RE, find_placeholders, mint_placeholder
from egress.secrets.scrub import scrub, scrub_pairs
from egress.secrets.stream import StreamScrubber

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


# -- red-team L13: what a stream holds back must not tell a prefix of a secret -----------------
ORACLE_VALUE = "sk-LABREALvalueALICEotherHOST987654"


@pytest.mark.parametrize("k", [1, 3, 8, 20, len(ORACLE_VALUE) - 1])
@pytest.mark.parametrize("lead", [b"data: ", b'data: {"t":"', b"", b"x\nline two "])
def test_stream_holdback_does_not_depend_on_the_secret(k: int, lead: bytes) -> None:
    """An agent streams its own guess through an honest echo: a true prefix of a real value
    and a wrong guess of the same length must be held back (and released) alike."""
    pairs = scrub_pairs([(ORACLE_VALUE, PH)])
    right = ORACLE_VALUE[:k].encode()
    wrong = bytes(b ^ 1 if i == k - 1 else b for i, b in enumerate(right))
    outs = []
    for guess in (right, wrong):
        s = StreamScrubber(pairs)
        outs.append(len(s.feed(lead + guess)))
    assert outs[0] == outs[1], outs


def test_stream_releases_complete_lines_and_bounds_what_it_holds() -> None:
    s = StreamScrubber(scrub_pairs([(ORACLE_VALUE, PH)]))
    assert s.feed(b'{"a":1}\n') == b'{"a":1}\n'  # NDJSON: a line goes out at once
    assert s.feed(b"x" * 10_000) == b"x" * (10_000 - 4096)
    assert s.feed(b"") == b"x" * 4096


def test_stream_split_value_is_scrubbed_at_every_point_without_line_breaks() -> None:
    body = b"y" * 5000 + ORACLE_VALUE.encode() + b"z" * 5000
    pairs = scrub_pairs([(ORACLE_VALUE, PH)])
    for cut in range(4990, 5000 + len(ORACLE_VALUE) + 10):
        s = StreamScrubber(pairs)
        out = s.feed(body[:cut]) + s.feed(body[cut:]) + s.feed(b"")
        assert ORACLE_VALUE.encode() not in out and PH.encode() in out, cut
