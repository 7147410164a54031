"""Where the chain's head is recorded besides the log itself: the seal and the anchors.

The head is the (seq, hash) of the last line *on disk*, never of lines still held in memory.
The seal (``NAME.seal``, beside the file, signed) lets ``verify`` tell a cut tail; anchors
(``anchor.py``, shipped off the host, signed) let it tell a cut tail even when the seal was cut
back too, and prove where a history that lost its oldest files legitimately starts.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from egress.audit.anchor import AnchorShipper, anchor_record
from egress.audit.chain import GENESIS, Chain
from egress.audit.logfile import LogFile


class Witness:
    def __init__(
        self,
        chain: Chain,
        path: Path | None,
        key_id: str | None,
        anchor: str | None,
        anchor_interval: float,
    ) -> None:
        self.chain = chain
        self.path = path
        self.key_id = key_id
        self.anchor_interval = anchor_interval
        self.shipper = AnchorShipper(anchor) if anchor else None
        self.head: tuple[int, str] = (-1, GENESIS)  # (seq, hash) of the last line on disk
        self._anchored_seq: int | None = None
        self._last_anchor = 0.0

    def seal(self, file: LogFile | None) -> None:
        if file is None:
            return
        doc = self.chain.record_mac(
            {
                "file": file.path.name,
                "lines": file.lines,
                "last_hash": self.head[1],
                "seq": self.head[0],
                "key_id": self.key_id,
                "updated": time.time(),
            }
        )
        with contextlib.suppress(OSError):
            file.write_seal(doc)

    def anchor(self, file: LogFile | None, reason: str, *, force: bool = True) -> None:
        """Ship the head (``force=False``: only when the interval has passed)."""
        if self.shipper is None:
            return
        now = time.monotonic()
        if not force and now - self._last_anchor < self.anchor_interval:
            return
        seq, head = self.head
        if seq == self._anchored_seq and reason == "interval":
            return  # nothing new since the last anchor
        self._anchored_seq, self._last_anchor = seq, now
        record = anchor_record(
            log=self.path,
            key_id=self.key_id,
            seq=seq,
            hash_=head,
            file=file.path.name if file is not None else "-",
            reason=reason,
        )
        self.shipper.ship(self.chain.record_mac(record))

    def close(self) -> None:
        if self.shipper is not None:
            self.shipper.close()
