"""Test PKI (moved to egress.testing.pki so bench/ can use it without importing tests/)."""

from egress.testing.pki import Leaf, TestCA

__all__ = ["Leaf", "TestCA"]
