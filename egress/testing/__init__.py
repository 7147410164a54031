"""Builders shared by the test suite (tests/) and the benchmarks (bench/).

Both need the same small world: a CA of their own for TLS origins, a proxy CA, registered
agents, stored secrets and a policy data document. It lives here, free of pytest, so that
bench/ does not import from tests/ (tests/support re-uses these modules). Nothing in
``egress`` proper imports this package.
"""
