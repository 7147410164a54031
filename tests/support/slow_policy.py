"""A deliberately slow Rego rule, for tests that a slow decision never holds up anyone else."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def slow_rule(user: str, size: int) -> str:
    """A module whose rule costs ``size``² Wasm steps for ``user``'s decisions only (1500: ~1 s)."""
    return f"""package egress.decision

slow_check := count({{x |
	some x in numbers.range(1, {size})
	some y in numbers.range(1, {size})
	x == y
}}) if input.agent.user == "{user}"
"""


def slow_policies(root: Path, user: str, size: int) -> Path:
    """A copy of policies/ with ``slow_rule`` added; returns the new policy directory."""
    pol = root / "policies"
    shutil.copytree(REPO / "policies" / "egress", pol / "egress")
    (pol / "egress" / "decision" / "slow.rego").write_text(slow_rule(user, size))
    return pol
