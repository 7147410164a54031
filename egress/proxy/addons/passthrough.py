"""Passthrough: tunnels the policy marked ``"inspect": false`` are relayed without MITM.

The CONNECT was decided like any other (identity, policy, destination check); instead of
TLS interception the tunnel becomes a plain TCP relay to the checked address. Bytes in each
direction are counted as they pass (message contents are not kept), and DecisionLog writes one
``kind: "tunnel"`` event when the tunnel closes, with bytes and duration.

A passthrough tunnel has no requests to decide again, so the kill switch pushed by the
Kubernetes API (``--kill-watch``) is checked on every chunk relayed: the next byte either way
after the kill closes the tunnel. Revocation and the tunnel idle timeout close passthrough
tunnels too, from the Sessions sweeper, without waiting for a byte.
"""

from __future__ import annotations

from mitmproxy import tcp
from mitmproxy.proxy import layer, layers

from egress.identity.model import Identity
from egress.policy.kill import KillSet
from egress.proxy import flowstate
from egress.proxy.addons.closures import handler_of
from egress.proxy.flowstate import ConnRegistry


class Passthrough:
    def __init__(self, conns: ConnRegistry, kills: KillSet | None = None) -> None:
        self.conns = conns
        self.kills = kills

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        state = self.conns.peek(nextlayer.context.client)
        if state is None or not state.passthrough or state.passthrough_started:
            return
        # runs after mitmproxy's own NextLayer addon: replace its choice (TLS interception)
        state.passthrough_started = True
        nextlayer.layer = layers.TCPLayer(nextlayer.context)

    @staticmethod
    def _close(flow: tcp.TCPFlow) -> None:
        """Relay nothing more and close both sides. mitmproxy's TCP layer does not honour
        ``flow.kill()`` (it forwards the chunk regardless), so the chunk is emptied and the
        client connection's handler is told to close it, which ends the server side too."""
        flow.metadata[flowstate.TUNNEL_KILLED] = True
        for message in flow.messages:
            message.content = b""
        flow.messages.clear()
        handler = handler_of(flow.client_conn)
        if handler is not None:
            handler.close_connection(flow.client_conn)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        flow.metadata[flowstate.TUNNEL_BYTES] = [0, 0]

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        if self.kills is not None and len(self.kills):
            state = self.conns.peek(flow.client_conn)
            who: Identity | None = state.tunnel.get("identity") if state else None
            if who is not None and self.kills.killed(who.user, who.agent):
                self._close(flow)
                return
        counts = flow.metadata.setdefault(flowstate.TUNNEL_BYTES, [0, 0])
        for message in flow.messages:
            counts[0 if message.from_client else 1] += len(message.content)
        flow.messages.clear()  # count, do not keep: tunnels can be long
