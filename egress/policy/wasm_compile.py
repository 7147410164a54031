"""Compile the policy directory to WebAssembly with the real OPA binary.

The embedded engine runs what OPA's own compiler produces (``opa build -t wasm``), so its
answers are OPA's by construction. The entrypoint is not the ``egress.decision`` package itself:
OPA's Wasm planner cannot emit a package document that holds functions. A generated module
(package ``egress_embedded``) copies every non-function rule of ``egress.decision`` whose name
does not start with ``_`` into one object, ``result``; an undefined rule is simply absent, as in
the package document OPA serves over HTTP.

The OPA binary is found in this order: ``$EGRESS_OPA_BIN``, ``$OPA``, ``bin/opa`` in the source
tree (what ``make opa`` builds), then ``opa`` on ``PATH``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from egress.errors import ConfigError

ENTRY_PACKAGE = "egress_embedded"
ENTRYPOINT = f"{ENTRY_PACKAGE}/result"
DECISION_PACKAGE = ("egress", "decision")
_SOURCE_BIN = Path(__file__).resolve().parents[2] / "bin" / "opa"


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """The Wasm module bytes and the digest of the Rego sources they were built from."""

    wasm: bytes
    digest: str
    rules: tuple[str, ...]


def policy_files(policy_dir: Path) -> list[Path]:
    """Every ``.rego`` module under ``policy_dir`` except tests (``*_test.rego``)."""
    return sorted(p for p in policy_dir.rglob("*.rego") if not p.name.endswith("_test.rego"))


def find_opa() -> str:
    """The OPA binary that compiles policies, or a ConfigError saying how to get one."""
    for name in ("EGRESS_OPA_BIN", "OPA"):
        value = os.environ.get(name)
        if value and Path(value).is_file():
            return value
    if _SOURCE_BIN.is_file():
        return str(_SOURCE_BIN)
    found = shutil.which("opa")
    if found:
        return found
    raise ConfigError(
        "the embedded engine compiles Rego with the OPA binary and none was found: "
        "run `make opa`, or set EGRESS_OPA_BIN=/path/to/opa",
        "policy_compiler_missing",
    )


def compile_policy(policy_dir: Path, opa: str | None = None) -> CompiledPolicy:
    """Compile every module under ``policy_dir``; ConfigError ``policy_invalid`` if OPA refuses."""
    files = policy_files(policy_dir) if policy_dir.is_dir() else []
    if not files:
        raise ConfigError(f"no .rego policy files under {policy_dir}", "policy_missing")
    binary = opa or find_opa()
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(policy_dir)).encode() + b"\0" + f.read_bytes())
    found = {n for f in files for n in _decision_rules(binary, f)}
    names = tuple(sorted(found | {"allow", "reason"}))  # referenced even when undefined
    with tempfile.TemporaryDirectory(prefix="egress-wasm-") as tmp:
        entry = Path(tmp) / "entry.rego"
        entry.write_text(entry_module(names))
        out = Path(tmp) / "bundle.tar.gz"
        args = ["build", "-t", "wasm", "-e", ENTRYPOINT, "-o", str(out), str(entry)]
        _run(binary, args + [str(f) for f in files])
        wasm = _policy_wasm(out.read_bytes())
    return CompiledPolicy(wasm=wasm, digest=digest.hexdigest(), rules=names)


def entry_module(names: tuple[str, ...]) -> str:
    """The generated entrypoint module: ``result[name] := data.egress.decision[name]``."""
    lines = [f"package {ENTRY_PACKAGE}", ""]
    for name in names:
        lines.append(f'result["{name}"] := data.egress.decision["{name}"]')
    return "\n".join(lines) + "\n"


def _decision_rules(binary: str, module: Path) -> set[str]:
    """Names of the non-function rules ``module`` defines in ``egress.decision`` (no ``_``)."""
    ast = orjson.loads(_run(binary, ["parse", "--format", "json", str(module)]))
    path = [part.get("value") for part in ast.get("package", {}).get("path", [])[1:]]
    if tuple(path) != DECISION_PACKAGE:
        return set()
    names = set()
    for rule in ast.get("rules", []):
        head = rule.get("head", {})
        ref = head.get("ref") or [{"value": head.get("name", "")}]
        name = str(ref[0].get("value", ""))
        if "args" not in head and name and not name.startswith("_") and name.isidentifier():
            names.add(name)
    return names


def _run(binary: str, args: list[str]) -> bytes:
    try:
        done = subprocess.run([binary, *args], capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"cannot run OPA ({binary}): {e}", "policy_compiler_missing") from e
    if done.returncode != 0:
        text = " ".join(done.stderr.decode(errors="replace").split())[:400]
        raise ConfigError(f"policy does not compile: {text}", "policy_invalid")
    return done.stdout


def _policy_wasm(bundle: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name.lstrip("/") == "policy.wasm":
                data = tar.extractfile(member)
                if data is not None:
                    return data.read()
    raise ConfigError("OPA's Wasm bundle holds no policy.wasm", "policy_invalid")
