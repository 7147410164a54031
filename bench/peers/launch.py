"""Start the peer proxies that bench/perf.py measures next to egress.

  squid     Debian squid-openssl: basic auth (basic_ncsa_auth), `ssl_bump bump all` with a CA
            of its own (security_file_certgen db), `cache deny all`, origin verified
            (squid.conf.template)
  goproxy   bin/goproxy-bench, a tiny main over github.com/elazarl/goproxy (bench/peers/goproxy):
            basic auth, AlwaysMitm with a CA generated at start, origin verified

Each ``*_missing()`` says why a peer cannot run here (None when it can), so perf.py skips the
column with that reason instead of failing. ``start_*`` write everything under ``root`` and
return the process and the ``hey -x`` proxy URL; the caller stops the process.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from string import Template

from egress.testing.net import free_port, wait_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOPROXY_BIN = REPO / "bin" / "goproxy-bench"
CERTGEN = Path("/usr/lib/squid/security_file_certgen")
NCSA = Path("/usr/lib/squid/basic_ncsa_auth")
SQUID_USER = "proxy"  # Debian's cache_effective_user: squid drops to it when started as root

Spawn = Callable[[list[str]], subprocess.Popen]


def squid_missing() -> str | None:
    """Why squid with ssl-bump cannot run here, or None."""
    squid = shutil.which("squid")
    if not squid:
        return "squid not installed (make benchdeps installs Debian squid-openssl)"
    version = subprocess.run([squid, "-v"], capture_output=True, text=True).stdout
    if "--with-openssl" not in version:
        return "squid built without OpenSSL (no ssl-bump): install squid-openssl"
    for helper in (CERTGEN, NCSA):
        if not helper.exists():
            return f"{helper} missing"
    if not shutil.which("openssl"):
        return "openssl CLI missing (makes squid's CA and htpasswd)"
    return None


def goproxy_missing() -> str | None:
    """Why goproxy-bench cannot run here, or None."""
    if not GOPROXY_BIN.exists():
        return f"{GOPROXY_BIN.relative_to(REPO)} not built (make benchdeps builds it with Go)"
    return None


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def start_squid(root: Path, origin_ca: Path, spawn: Spawn) -> tuple[subprocess.Popen, str]:
    """squid bumping every CONNECT, on a free port; its files under ``root/squid``."""
    d = root / "squid"
    d.mkdir()
    # RSA 2048 like mitmproxy's default CA, so the leaf signing cost is comparable
    req = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"]
    req += ["-subj", "/CN=squid bench CA", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")]
    _run(req)
    password = secrets.token_urlsafe(16)
    hashed = _run(["openssl", "passwd", "-apr1", password]).strip()
    (d / "htpasswd").write_text(f"bot:{hashed}\n")
    _run([str(CERTGEN), "-c", "-s", str(d / "ssl_db"), "-M", "16MB"])
    port = free_port()
    conf = Template((HERE / "squid.conf.template").read_text())
    (d / "squid.conf").write_text(conf.substitute(port=port, dir=d, origin_ca=origin_ca))
    # squid reads its CA and config as root, then its helpers and workers run as `proxy`
    shutil.chown(d, SQUID_USER, SQUID_USER)
    for path in d.rglob("*"):
        shutil.chown(path, SQUID_USER, SQUID_USER)
    proc = spawn(["squid", "-N", "-f", str(d / "squid.conf")])
    try:
        wait_port(port)
    except Exception as exc:
        log = (d / "cache.log").read_text() if (d / "cache.log").exists() else ""
        raise RuntimeError(f"squid did not listen: {log[-2000:]}") from exc
    return proc, f"http://bot:{password}@127.0.0.1:{port}"


def start_goproxy(root: Path, origin_ca: Path, spawn: Spawn) -> tuple[subprocess.Popen, str]:
    """goproxy-bench on a free port, verifying the origin against ``origin_ca``."""
    password = secrets.token_urlsafe(16)
    port = free_port()
    cmd = [str(GOPROXY_BIN), "-listen", f"127.0.0.1:{port}", "-user", "bot"]
    cmd += ["-password", password, "-upstream-ca", str(origin_ca)]
    cmd += ["-ca-out", str(root / "goproxy-ca.pem")]
    proc = spawn(cmd)
    wait_port(port)
    return proc, f"http://bot:{password}@127.0.0.1:{port}"
