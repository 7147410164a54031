"""Anchors: the chain's head (seq, hash, time), signed, shipped somewhere the log's disk is not.

Someone with write access to the log's disk can cut the tail and restore an older seal, or
delete the first files; they cannot reach back into a file on another host or a collector's
HTTP endpoint. ``--log-anchor`` takes a FILE (one JSON record appended per anchor) or an
``http(s)://`` URL (each record POSTed as JSON). Shipping runs on its own thread with a small
bounded queue: a slow or dead collector never delays the decision log; failures are counted
and reported on stderr.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

ANCHOR_QUEUE = 256


def read_anchors(path: Path) -> list[dict[str, Any]]:
    """Every record of an anchor file (lines that are not records are skipped)."""
    out = []
    for line in path.read_bytes().splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("anchor") == 1:
            out.append(doc)
    return out


class AnchorShipper:
    def __init__(self, target: str, timeout: float = 3.0) -> None:
        self.target = target
        self.timeout = timeout
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(ANCHOR_QUEUE)
        self._thread = threading.Thread(target=self._run, name="egress-log-anchor", daemon=True)
        self._thread.start()

    @property
    def is_url(self) -> bool:
        return self.target.startswith(("http://", "https://"))

    def ship(self, record: dict[str, Any]) -> None:
        try:
            self._q.put_nowait(dict(record))
        except queue.Full:
            self.failures += 1  # the collector is far behind: newer anchors supersede older

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            record = self._q.get()
            if record is None:
                return
            try:
                self._send(orjson.dumps(record))
                self.sent += 1
                self.last_error = None
            except (OSError, ValueError) as e:
                self.failures += 1
                if self.last_error is None:
                    print(f"egress: log anchor to {self.target} failed: {e}", file=sys.stderr)
                self.last_error = str(e)

    def _send(self, body: bytes) -> None:
        if self.is_url:
            req = urllib.request.Request(  # noqa: S310 - an http(s) URL the operator configured
                self.target,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            # straight to the collector: never through an HTTP(S)_PROXY from the environment
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(req, timeout=self.timeout) as resp:
                resp.read()
            return
        fd = os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, body + b"\n")
        finally:
            os.close(fd)


def anchor_record(
    *, log: Path | None, key_id: str | None, seq: int, hash_: str, file: str, reason: str
) -> dict[str, Any]:
    return {
        "anchor": 1,
        "log": str(log.resolve()) if log is not None else "-",
        "key_id": key_id,
        "seq": seq,
        "hash": hash_,
        "file": file,
        "reason": reason,
        "time": time.time(),
    }
