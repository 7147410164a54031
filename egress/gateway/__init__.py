"""The LLM gateway: an OpenAI-compatible front door with the proxy's identity, policy, secrets
and decision log.

Agents call ``http://gateway:4000/<route>/v1/...`` with their platform credential as the API
key. The gateway decides who is calling (``identity.py``), whether this agent may use this route
and model (the same policy engine, ``phase: "gateway"``), swaps in the agent's upstream key from
the secret store, forwards (streaming included), counts tokens and enforces budgets
(``budgets.py``, ``usage.py``), and writes the same decision events with component ``gateway``.
"""
