"""The version-pinned mitmproxy patches: pinned to the release and source they were written
for, and behaving as the functions they replace."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from mitmproxy import exceptions, hooks, http, options, version
from mitmproxy.master import Master

from egress.proxy import mitm_patches


@pytest.fixture
def patched() -> Iterator[None]:
    mitm_patches.revert()
    assert mitm_patches.apply() == [p.name for p in mitm_patches.PATCHES]
    yield
    mitm_patches.revert()


def test_pinned_to_this_mitmproxy_release() -> None:
    # an upgrade fails here: re-read each patched function, then update the pins
    assert version.VERSION == mitm_patches.PINNED_VERSION


@pytest.mark.parametrize("patch", mitm_patches.PATCHES, ids=lambda p: p.name)
def test_patched_source_unchanged(patch: mitm_patches.Patch) -> None:
    assert mitm_patches.check(patch) is None


def test_skipped_when_source_differs(caplog: pytest.LogCaptureFixture) -> None:
    mitm_patches.revert()
    real = mitm_patches.PATCHES
    wrong = tuple(p.__class__(**{**vars(p), "source_sha256": "0" * 64}) for p in real)
    mitm_patches.PATCHES = wrong
    try:
        with caplog.at_level(logging.WARNING):
            assert mitm_patches.apply() == []
        assert http.MessageData.__post_init__ is real[0].original
        assert "skipped" in caplog.text
    finally:
        mitm_patches.PATCHES = real


def test_revert_restores_originals(patched: None) -> None:
    assert http.MessageData.__post_init__ is not mitm_patches.PATCHES[0].original
    mitm_patches.revert()
    for p in mitm_patches.PATCHES:
        assert getattr(p.owner, p.attr) is p.original


def test_messages_still_built_when_patched(patched: None) -> None:
    req = http.Request.make("GET", "https://example.com/x", b"", http.Headers(a="b"))
    resp = http.Response.make(200, b"ok", {"c": "d"})
    assert (req.host, req.path, req.headers["a"]) == ("example.com", "/x", "b")
    assert (resp.status_code, resp.content) == (200, b"ok")


class Recorder:
    def __init__(self, name: str, calls: list[str], fail: type[BaseException] | None = None):
        self.name = name
        self.calls = calls
        self.fail = fail

    def update(self, flows: Any) -> None:
        self.calls.append(self.name)
        if self.fail is not None:
            raise self.fail("boom from " + self.name)


class Silent:
    """An addon without the hook."""


class Parent:
    def __init__(self, calls: list[str]) -> None:
        self.addons = [Recorder("child", calls)]


class AsyncRecorder:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    async def update(self, flows: Any) -> None:
        self.calls.append("async")


async def _dispatch(fail_last: type[BaseException]) -> tuple[list[str], bool]:
    calls: list[str] = []
    master = Master(options.Options())
    master.addons.add(
        Silent(),
        Recorder("a", calls),
        Parent(calls),
        Recorder("err", calls, ValueError),
        AsyncRecorder(calls),
        Recorder("halt", calls, fail_last),
        Recorder("after", calls),
    )
    raised = False
    try:
        await master.addons.trigger_event(hooks.UpdateHook([]))
    except exceptions.OptionsError:
        raised = True
    return calls, raised


@pytest.mark.parametrize("last", [exceptions.AddonHalt, exceptions.OptionsError, KeyError])
async def test_dispatch_same_as_mitmproxy(
    last: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    mitm_patches.revert()
    with caplog.at_level(logging.ERROR):
        expected = await _dispatch(last)
    errors_unpatched = [r.getMessage() for r in caplog.records if "Addon error" in r.getMessage()]
    caplog.clear()
    mitm_patches.apply()
    try:
        with caplog.at_level(logging.ERROR):
            got = await _dispatch(last)
    finally:
        mitm_patches.revert()
    errors = [r.getMessage() for r in caplog.records if "Addon error" in r.getMessage()]
    assert got == expected
    assert errors == errors_unpatched
    assert "Addon error: boom from err" in errors
    stops = last is not KeyError
    assert (expected[0][-1] == "after") is not stops
