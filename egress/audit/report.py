"""What ``egress logs verify`` reports: one ``Report`` per chain, its problems and notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from egress.audit.chain import GENESIS


@dataclass
class Problem:
    kind: str
    file: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.file}:{self.line}: {self.detail}"


@dataclass
class Report:
    chain: str = ""
    files: list[str] = field(default_factory=list)
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    proofs: list[str] = field(default_factory=list)
    last_hash: str = GENESIS
    anchored: bool = True  # the chain starts at the beginning of history (seq 0)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ChainLine:
    file: str
    line: int
    seq: int
    link: str
    hash: str
    signed: bool | None  # None: no MAC; else whether it matches the key (True without a key)
    note: Any
