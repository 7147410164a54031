"""The policy data document builder (egress.testing.policy), re-exported for tests."""

from egress.testing.policy import Rule, policy_doc

__all__ = ["Rule", "policy_doc"]
