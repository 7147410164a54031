"""A value one agent stored upstream is not readable by another agent either.

Red-team finding L7: alice sends her placeholder to an approved host that stores it (a note,
an issue body); the proxy swaps the real value in, as it should. Bob (another user, another
agent, no secrets of his own there) then reads the same resource: before, only alice's own
answers were scrubbed of her values, so bob read her token verbatim. Every answer from a host
a secret's binding admits is now scrubbed of that secret, whoever reads it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from egress.secrets.model import SecretRef
from egress.secrets.released import Released
from tests.conftest import GITHUB_VALUE
from tests.support.scrub_env import SPECIAL_VALUE, ScrubEnv, start_scrub_env
from tests.support.views import decoded_body, leaks
from tests.support.wire import request

pytestmark = pytest.mark.e2e

VALUES = {"github": GITHUB_VALUE, "special": SPECIAL_VALUE}


@pytest.fixture(scope="module")
def env(world, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrubEnv]:
    e = start_scrub_env(world, tmp_path_factory.mktemp("scrub-cross"))
    yield e
    e.close()


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("secret", sorted(VALUES))
@pytest.mark.parametrize(
    "read", ["mode=length", "mode=chunked&ctype=text/event-stream", "coding=gzip"]
)
def test_another_agent_reads_a_stored_value_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, read: str
) -> None:
    _store_then_read(env, world, http2, secret, read, "localhost")


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("secret", sorted(VALUES))
@pytest.mark.parametrize(
    "read", ["mode=length", "mode=chunked&ctype=text/event-stream", "coding=gzip"]
)
def test_another_name_of_the_same_server_reads_it_scrubbed(
    env: ScrubEnv, world, http2: bool, secret: str, read: str
) -> None:
    """Red team N5 (round 2): the secret is bound to localhost only; bob reads what alice
    stored through 127.0.0.1, a name the binding does not admit but the very server (the
    proxy resolved and dialled both to the same address)."""
    _store_then_read(env, world, http2, secret, read, "127.0.0.1")


def _store_then_read(
    env: ScrubEnv, world, http2: bool, secret: str, read: str, reader_host: str
) -> None:
    """alice stores a note holding her placeholder (swapped on the way) through localhost;
    bob reads it back through ``reader_host`` and must see only her inert placeholder."""
    key = f"{reader_host}-{secret}-{int(http2)}-{read.split('=')[1].split('&')[0]}"
    port, ph = env.port(http2), env.placeholders[secret]
    stored = request(
        env.proxy, world.alice, port, "POST", f"/api/store?key={key}",
        {"Content-Type": "text/plain"}, f"note: {ph}".encode(), http2=http2,
    )  # fmt: skip
    assert stored.status == 201
    assert env.responder(http2).stored[key] == f"note: {VALUES[secret]}".encode()
    got = request(
        env.proxy, world.bob, port, "GET", f"/api/read?key={key}&{read}",
        http2=http2, host=reader_host,
    )  # fmt: skip
    assert got.status == 200, got
    assert not leaks(got, VALUES[secret]), leaks(got, VALUES[secret])
    assert ph.encode() in decoded_body(got)  # bob sees alice's placeholder: inert for him


def test_released_values_are_kept_per_host_and_across_rotation() -> None:
    """The registry behind it: a value is scrubbed from answers of the hosts its binding
    admits, and a rotated-away value is still remembered (it may be stored somewhere)."""
    r = Released()
    ref = SecretRef("a@x", "bot", "gh", "ghp_placeholder", ("api.github.com", "*.example.com"))
    r.record(ref, "old-value")
    r.record(ref, "new-value")
    assert set(r.for_host("api.github.com")) == {
        ("old-value", "ghp_placeholder"),
        ("new-value", "ghp_placeholder"),
    }
    assert set(r.for_host("files.example.com")) == set(r.for_host("API.GITHUB.COM"))
    assert r.for_host("evil.test") == ()
    for i in range(10):
        r.record(ref, f"v{i}")
    assert len(r.for_host("api.github.com")) == 4  # bounded
