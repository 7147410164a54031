"""Building and serving the policy bundle: content, revision, ETag/304, rebuild on change.

OPA's acceptance of the bundle is tested with the real bin/opa in
tests/conformance/test_opa_bundles.py; here the archive and the HTTP service themselves.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from egress.cli.main import main
from egress.errors import ConfigError
from egress.policy.bundle import BUNDLE_RESOURCE, build_bundle, opa_config
from egress.policy.bundle_server import BundleServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    policy_dir = tmp_path / "policies"
    shutil.copytree(REPO / "policies" / "egress", policy_dir / "egress")
    data_file = tmp_path / "data.json"
    shutil.copy(REPO / "policies" / "data.json", data_file)
    return policy_dir, data_file


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_bundle_layout(sources: tuple[Path, Path]) -> None:
    policy_dir, data_file = sources
    bundle = build_bundle(policy_dir, data_file)
    members = _members(bundle.archive)
    assert sorted(members) == ["/.manifest", "/data.json", "/egress/decision/decision.rego"]
    manifest = json.loads(members["/.manifest"])
    assert manifest == {"revision": bundle.revision, "roots": ["egress"]}
    assert bundle.revision.startswith("sha256:")
    assert members["/data.json"] == data_file.read_bytes()
    assert bundle.etag == f'"{bundle.revision}"'


def test_revision_is_the_content(sources: tuple[Path, Path]) -> None:
    policy_dir, data_file = sources
    first = build_bundle(policy_dir, data_file)
    os.utime(data_file, (1, 1))  # a touch alone is no new content
    assert build_bundle(policy_dir, data_file) == first  # same bytes too (deterministic)
    data = json.loads(data_file.read_text())
    data["egress"]["killed"]["x/y"] = True
    data_file.write_text(json.dumps(data))
    assert build_bundle(policy_dir, data_file).revision != first.revision


def test_refuses_what_opa_would_not_serve(sources: tuple[Path, Path], tmp_path: Path) -> None:
    policy_dir, data_file = sources
    data_file.write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        build_bundle(policy_dir, data_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no \.rego"):
        build_bundle(empty, None)


@pytest.fixture
def server(sources: tuple[Path, Path]) -> Iterator[BundleServer]:
    s = BundleServer(*sources, poll_interval=0.05).start()
    yield s
    s.stop()


def test_serves_with_etag_and_304(server: BundleServer) -> None:
    url = f"{server.url}/{BUNDLE_RESOURCE}"
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == server.source.bundle.archive
    assert r.headers["etag"] == server.source.bundle.etag
    again = httpx.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert httpx.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert httpx.get(f"{server.url}/bundles/other.tar.gz").status_code == 404


def test_rebuilds_on_change_and_keeps_last_good(
    server: BundleServer, sources: tuple[Path, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    _, data_file = sources
    url = f"{server.url}/{BUNDLE_RESOURCE}"
    old = httpx.get(url).headers["etag"]
    data = json.loads(data_file.read_text())
    data["egress"]["killed"]["x/y"] = True
    data_file.write_text(json.dumps(data))
    r = httpx.get(url, headers={"If-None-Match": old})
    assert r.status_code == 200 and r.headers["etag"] != old
    assert json.loads(_members(r.content)["/data.json"])["egress"]["killed"]["x/y"] is True
    data_file.write_text("{broken")
    kept = httpx.get(url, headers={"If-None-Match": r.headers["etag"]})
    assert kept.status_code == 304  # the last good bundle is still the one served
    assert "bundle rebuild failed" in capfd.readouterr().err


def test_cli_build_and_opa_config(sources: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    policy_dir, data_file = sources
    out = tmp_path / "bundle.tar.gz"
    args = ["policy", "bundle", "build", "--policy-dir", str(policy_dir)]
    assert main([*args, "--data-file", str(data_file), "-o", str(out)]) == 0
    revision = build_bundle(policy_dir, data_file).revision
    assert out.read_bytes() == build_bundle(policy_dir, data_file).archive
    assert revision in capsys.readouterr().out
    config = json.loads(opa_config("http://127.0.0.1:1/"))
    assert config["services"]["egress"]["url"] == "http://127.0.0.1:1"
    assert config["bundles"]["egress"]["resource"] == BUNDLE_RESOURCE
