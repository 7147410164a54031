"""Passthrough: tunnels the policy marked ``"inspect": false`` are relayed without MITM.

The CONNECT was decided like any other (identity, policy, destination check); instead of
TLS interception the tunnel becomes a plain TCP relay to the checked address. Bytes in each
direction are counted as they pass (message contents are not kept), and DecisionLog writes one
``kind: "tunnel"`` event when the tunnel closes, with bytes and duration.
"""

from __future__ import annotations

from mitmproxy import tcp
from mitmproxy.proxy import layer, layers

from egress import flowstate
from egress.flowstate import ConnRegistry


class Passthrough:
    def __init__(self, conns: ConnRegistry) -> None:
        self.conns = conns

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        state = self.conns.peek(nextlayer.context.client)
        if state is None or not state.passthrough or state.passthrough_started:
            return
        # runs after mitmproxy's own NextLayer addon: replace its choice (TLS interception)
        state.passthrough_started = True
        nextlayer.layer = layers.TCPLayer(nextlayer.context)

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        flow.metadata[flowstate.TUNNEL_BYTES] = [0, 0]

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        counts = flow.metadata.setdefault(flowstate.TUNNEL_BYTES, [0, 0])
        for message in flow.messages:
            counts[0 if message.from_client else 1] += len(message.content)
        flow.messages.clear()  # count, do not keep: tunnels can be long
