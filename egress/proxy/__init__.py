"""The egress proxy process: mitmproxy set-up, its addons (the request path), admin and workers."""
