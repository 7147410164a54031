"""The upstream key never reaches the agent in a shape a raw-byte scrubber misses.

The real fake-LLM upstream (tests/support/fake_llm.py, HTTP on 127.0.0.1) echoes the key it
was sent gzip- or deflate-coded (the gateway passes no Content-Encoding on, so coded bytes
used to go out as they came, scrubbed as coded bytes: the agent only had to gunzip them), or
in a charset that hides ASCII (UTF-16/32 text, or ASCII labelled UTF-16, which a client that
ignores the label reads as is). What the agent receives is read every way a client could.
"""

from __future__ import annotations

import contextlib
import gzip
import zlib

import httpx
import pytest

from tests.gateway.conftest import UPSTREAM_KEY, Gateway
from tests.support.fake_llm import SHAPES

CODECS = ["utf-8", "latin-1", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]


def _views(raw: bytes, ctype: str) -> list[bytes]:
    """The bytes, undone every way the agent could try, and every text re-encoded."""
    views = [raw]
    with contextlib.suppress(OSError, EOFError, zlib.error):
        views.append(gzip.decompress(raw))
    with contextlib.suppress(zlib.error):
        views.append(zlib.decompress(raw))
    texts = []
    for codec in CODECS + [p.split("=", 1)[1] for p in ctype.split(";") if "charset=" in p]:
        with contextlib.suppress(LookupError, UnicodeError):
            texts.append(raw.decode(codec.strip()))
    for text in texts:
        views.append(text.encode("utf-8", "surrogatepass"))
        for codec in CODECS:
            with contextlib.suppress(UnicodeError):
                views.append(text.encode(codec))
    return views


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_key_in_any_shape_never_reaches_the_agent(gateway: Gateway, shape: str) -> None:
    r = httpx.post(
        gateway.url + f"/openai/v1/echo-key-shaped/{shape}",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"Authorization": f"Bearer {gateway.tokens['alice']}", "Accept-Encoding": "gzip"},
        timeout=20,
    )
    assert r.status_code == 200
    assert "content-encoding" not in r.headers  # what the agent gets is what was checked
    raw = r.content
    assert raw, shape
    for view in _views(raw, r.headers.get("content-type", "")):
        assert UPSTREAM_KEY.encode() not in view, (shape, view[:120])
    assert gateway.llm.seen[-1]["headers"]["authorization"].endswith(UPSTREAM_KEY)


def test_a_coded_stream_still_reaches_the_agent_decoded(gateway: Gateway) -> None:
    r = httpx.post(
        gateway.url + "/openai/v1/echo-key-shaped/sse-gzip",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"Authorization": f"Bearer {gateway.tokens['alice']}"},
        timeout=20,
    )
    assert r.status_code == 200
    assert r.content.startswith(b'data: {"choices"') and r.content.endswith(b"data: [DONE]\n\n")
