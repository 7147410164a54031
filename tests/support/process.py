"""Lifecycle of a server process a test drives: stop, kill, pause (SIGSTOP), resume; and
finding the binaries `make test` builds."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def required_binary(env: str, default: str, make_target: str) -> Path:
    """$env, else REPO/default. Missing: a failure under CI (make test builds it), a skip
    otherwise, naming the make target that provides it."""
    path = Path(os.environ.get(env) or REPO / default)
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} missing: `make {make_target}` provides it")
        pytest.skip(f"{path} missing: run `make {make_target}`")
    return path


class ManagedProcess:
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
