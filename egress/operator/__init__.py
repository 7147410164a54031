"""The Kubernetes operator: `Agent` resources to isolated, governed agents.

``render.py`` holds pure functions from an Agent's spec to every Kubernetes object it needs;
``handlers.py`` is the kopf layer that applies them, runs the kill switch and the idle reaper.
"""
