"""Build an OPA bundle from the policy directory and the data file.

A bundle is OPA's production way to ship policy and data: a gzipped tar with ``/.manifest``
(``revision`` and ``roots``), the ``.rego`` modules and ``/data.json``. OPA pulls it from a
bundle service and reports the manifest revision under ``data.system.bundles``, which is what
the OPA engine keys its decision cache on (``egress/policy/opa.py``), so the revision must
change whenever the content does: it is a hash of the content, not of the archive.

Rego tests (``*_test.rego``) stay out: they are for ``opa test``, not for serving. The roots are
the first path segment of every package and of every top-level data key (``egress`` here), so
OPA accepts the bundle and owns exactly those trees. The archive is deterministic (sorted
names, zero times) so the same content gives the same bytes and ETag on every rebuild.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from egress.errors import ConfigError

BUNDLE_NAME = "egress"
BUNDLE_RESOURCE = f"bundles/{BUNDLE_NAME}.tar.gz"
_PACKAGE = re.compile(rb"^\s*package\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@dataclass(frozen=True)
class Bundle:
    revision: str
    roots: tuple[str, ...]
    archive: bytes  # the .tar.gz

    @property
    def etag(self) -> str:
        return f'"{self.revision}"'


def source_files(policy_dir: Path, data_file: Path | None) -> list[Path]:
    """The files a bundle is built from, sorted: every served ``.rego`` module, then the data."""
    if not policy_dir.is_dir():
        raise ConfigError(f"policy directory not found: {policy_dir}")
    modules = sorted(
        p for p in policy_dir.rglob("*.rego") if p.is_file() and not p.name.endswith("_test.rego")
    )
    if not modules:
        raise ConfigError(f"no .rego modules under {policy_dir}")
    return modules + ([data_file] if data_file is not None else [])


def _roots(modules: dict[str, bytes], data: object) -> tuple[str, ...]:
    roots = set()
    for name, text in modules.items():
        match = _PACKAGE.search(text)
        if match is None:
            raise ConfigError(f"{name}: no package line")
        roots.add(match.group(1).decode())
    if not isinstance(data, dict):
        raise ConfigError("bundle data must be a JSON object")
    roots.update(str(k) for k in data)
    return tuple(sorted(roots))


def build_bundle(policy_dir: Path, data_file: Path | None) -> Bundle:
    """The bundle for these files; ConfigError when a module or the data cannot be served."""
    files = source_files(policy_dir, data_file)
    modules = {
        "/" + p.relative_to(policy_dir).as_posix(): p.read_bytes()
        for p in files
        if p.suffix == ".rego"
    }
    raw = data_file.read_bytes() if data_file is not None else b"{}"
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"{data_file}: not JSON: {e}") from e
    roots = _roots(modules, data)
    digest = hashlib.sha256()
    for name, content in [*sorted(modules.items()), ("/data.json", raw)]:
        # length-prefixed so that moving bytes between files cannot keep the hash
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    revision = "sha256:" + digest.hexdigest()[:32]
    manifest = json.dumps({"revision": revision, "roots": list(roots)}, sort_keys=True).encode()
    entries = [("/.manifest", manifest), *sorted(modules.items()), ("/data.json", raw)]
    return Bundle(revision, roots, _archive(entries))


def _archive(entries: list[tuple[str, bytes]]) -> bytes:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def write_bundle(policy_dir: Path, data_file: Path | None, out: Path) -> Bundle:
    """Build the bundle and write it to ``out`` (through a temporary name: no half files)."""
    bundle = build_bundle(policy_dir, data_file)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bundle.archive)
    tmp.replace(out)
    return bundle


def opa_config(bundle_service_url: str, *, min_delay: int = 1, max_delay: int = 2) -> str:
    """An OPA config file (JSON is YAML) that pulls this bundle from ``bundle_service_url``."""
    config = {
        "services": {BUNDLE_NAME: {"url": bundle_service_url.rstrip("/")}},
        "bundles": {
            BUNDLE_NAME: {
                "service": BUNDLE_NAME,
                "resource": BUNDLE_RESOURCE,
                "polling": {"min_delay_seconds": min_delay, "max_delay_seconds": max_delay},
            }
        },
    }
    return json.dumps(config, indent=2) + "\n"
