"""Version-pinned patches to mitmproxy that remove per-request work a forward proxy does not need.

One place for every change to mitmproxy's own code. Each patch names the function it replaces
and the SHA-256 of that function's source in the pinned mitmproxy release; ``apply()`` patches
only when the running mitmproxy is that release and every source still matches, and otherwise
logs the patch as skipped (the proxy then runs unpatched: slower, never different).
tests/unit/test_mitm_patches.py fails when the version or a source changes, so an upgrade
re-reviews each patch.

Profile under load (bench/profile.py): ~6% of samples in ``MessageData.__post_init__`` (runtime
type checks of every request and response built) and ~6% in the addon manager's per-addon
``safecall`` context manager and coroutine, entered for every hook on every addon, including
the many addons that do not implement that hook.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import addonmanager, exceptions, hooks, http, version

log = logging.getLogger(__name__)

PINNED_VERSION = "12.2.3"


@dataclass(frozen=True)
class Patch:
    """One replacement: ``owner.attr`` becomes ``replacement`` when the source of ``original``
    and of the functions the replacement relies on (``relies_on``) hashes to ``source_sha256``."""

    name: str
    owner: type
    attr: str
    original: Callable[..., Any]
    source_sha256: str
    replacement: Callable[..., Any]
    why: str
    relies_on: tuple[Callable[..., Any], ...] = ()


def source_hash(*funcs: Callable[..., Any]) -> str:
    return hashlib.sha256("".join(inspect.getsource(f) for f in funcs).encode()).hexdigest()


def _no_typecheck(self: http.MessageData) -> None:
    """Request/response fields are built by mitmproxy's parsers and by egress code that mypy
    --strict checks; the runtime check (active unless python -O) only ever raised on a
    programming error, and costs a ``typecheck`` walk of six fields per message."""


async def _trigger_event(self: addonmanager.AddonManager, event: hooks.Hook) -> None:
    """``AddonManager.trigger_event`` without the per-addon context manager and coroutine for
    addons that neither implement the hook nor have children. Same order, same AddonHalt and
    OptionsError semantics; any other error is logged by mitmproxy's own ``safecall``."""
    name = event.name
    for addon in self.chain:
        if not getattr(addon, name, None) and not hasattr(addon, "addons"):
            continue  # _iter_hooks would yield nothing for it
        try:
            await self.invoke_addon(addon, event)
        except exceptions.AddonHalt:
            return
        except exceptions.OptionsError:
            raise
        except Exception as e:
            with addonmanager.safecall():
                raise e


PATCHES: tuple[Patch, ...] = (
    Patch(
        "message-typecheck",
        http.MessageData,
        "__post_init__",
        http.MessageData.__post_init__,
        "f65088e210cd9cc1dc277086ee4c7f5701d433b02e6f1d81a2ac22f94c484414",
        _no_typecheck,
        "runtime type checks of every request and response",
    ),
    Patch(
        "addon-dispatch",
        addonmanager.AddonManager,
        "trigger_event",
        addonmanager.AddonManager.trigger_event,
        "762b665e59b93c09f6e2fda7c350389e595a2aab7fbf5145d98591cb3fa0dbd0",
        _trigger_event,
        "a context manager and a coroutine per addon per hook",
        # the skip test mirrors _iter_hooks/traverse; errors go through safecall
        (
            addonmanager.AddonManager._iter_hooks,
            addonmanager.traverse,
            addonmanager.safecall,
            addonmanager.AddonManager.invoke_addon,
        ),
    ),
)

_applied: list[str] = []


def check(patch: Patch) -> str | None:
    """Why ``patch`` cannot be applied, or None when it can."""
    if version.VERSION != PINNED_VERSION:
        return f"mitmproxy {version.VERSION}, patches are for {PINNED_VERSION}"
    try:
        found = source_hash(patch.original, *patch.relies_on)
    except (OSError, TypeError) as e:
        return f"source of {patch.owner.__name__}.{patch.attr} unavailable: {e}"
    if found != patch.source_sha256:
        return f"{patch.owner.__name__}.{patch.attr} changed (sha256 {found[:12]})"
    return None


def apply() -> list[str]:
    """Apply every patch that checks out (once per process); the names applied.
    EGRESS_MITM_PATCHES=off applies none (benchmarks compare both)."""
    if os.environ.get("EGRESS_MITM_PATCHES", "on").lower() == "off":
        log.warning("mitmproxy patches off (EGRESS_MITM_PATCHES=off)")
        return list(_applied)
    for patch in PATCHES:
        if patch.name in _applied:
            continue
        problem = check(patch)
        if problem is not None:
            log.warning("mitmproxy patch %s skipped: %s", patch.name, problem)
            continue
        setattr(patch.owner, patch.attr, patch.replacement)
        _applied.append(patch.name)
    return list(_applied)


def revert() -> None:
    """Put the originals back (tests compare patched and unpatched behaviour)."""
    for patch in PATCHES:
        if patch.name in _applied:
            setattr(patch.owner, patch.attr, patch.original)
            _applied.remove(patch.name)
