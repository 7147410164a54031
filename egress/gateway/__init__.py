"""The LLM gateway: an OpenAI-compatible front door with the proxy's identity, policy, secrets
and decision log.

Agents call ``http://gateway:4000/<route>/v1/...`` with their platform credential as the API
key. A request passes the same stations as in the proxy, in the same order:

  identify -> route -> authorize -> budget -> credential   ``stations.py``
  -> forward -> account                                    ``forward.py``, ``call.py``

who is calling (``identity.py``), which route and model, whether the policy (``phase:
"gateway"``) admits them, whether the agent's budgets have room (``budgets.py``), the agent's
upstream key from the secret store, forwarding (streaming included) with the key scrubbed from
the answer, then tokens counted (``usage.py``) and the same decision event written with
component ``gateway``. ``app.py`` runs the stations; ``server.py`` builds their dependencies.
"""
