"""Decision events: one JSON line per request and per refused CONNECT, hash-chained."""

from __future__ import annotations

from egress.audit.events import Fields, new_decision_id
from egress.audit.writer import DecisionLogWriter

__all__ = ["DecisionLogWriter", "Fields", "new_decision_id"]
