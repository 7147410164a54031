"""Lifecycle of a server process a test or benchmark drives: stop, kill, pause, resume."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


class ManagedProcess:
    """Base of the server handles (OPA, OpenBao, ...) that hold a ``proc``."""

    proc: subprocess.Popen[Any] | None = None

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
