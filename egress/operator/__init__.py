"""The Kubernetes operator: `Agent` resources to isolated, governed agents.

``spec.py`` is the model (``AgentSpec``, ``Platform``, labels); ``render.py`` (with
``render_network``, ``render_workload``, ``render_platform``) holds pure functions from an
Agent's spec to every Kubernetes object it needs; ``reconcile.py`` applies them through
``cluster.py``; ``handlers.py`` is the kopf layer that hands it each event, runs the kill
switch and the idle reaper.
"""
