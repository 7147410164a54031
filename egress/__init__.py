"""egress: the secure egress edge for autonomous AI agents.

The request path, one module (or sub-package) per station:

    identify (credentials, identity) -> decide (policy/) -> swap (secrets/)
        -> upstream -> log (audit/)

The mitmproxy addons that wire these stations into the proxy live in ``egress.proxy.addons``; their
order is declared in exactly one place, ``egress.proxy.addons.pipeline``.
"""

from __future__ import annotations

__version__ = "0.1.0"
