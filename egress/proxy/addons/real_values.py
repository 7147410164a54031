"""RealValues: an agent that sends a real secret value (not its placeholder) is refused.

An agent never holds a real value; if one shows up in what it sends, it leaked somewhere
(read back through a gap, pasted by a person). Forwarding it would send it where the secret's
host binding may not admit, and the decision event (built from what the agent sent) would
store it for every log reader. So, for every request of an identified agent, after Authorize
built the event's view of the request and before anything is swapped: the path, query,
headers and body are searched for every form of the agent's real values (the same search as
the answer scrubber), the event's view is rewritten to the placeholders, and the request is
refused 403 ``secret_value_in_request`` (even if Authorize already refused it, its event is
cleaned).
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.errors import SecretStoreError
from egress.identity.model import Identity
from egress.proxy import flowstate, replies
from egress.secrets import SecretStore
from egress.secrets.scrub import ScrubSet, scrub, scrub_pairs


class RealValues:
    def __init__(self, store: SecretStore) -> None:
        self.store = store

    async def request(self, flow: http.HTTPFlow) -> None:
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        if identity is None or flow.error or not flow.live:
            return
        try:
            secrets = await self.store.agent_secrets(identity)
        except SecretStoreError:
            return  # SwapSecrets and ScrubResponses fail closed on the store themselves
        if not secrets:
            return
        s = scrub_pairs(sorted((value.reveal(), ref.placeholder) for ref, value in secrets))
        req = flow.request
        seen = b"\n".join(
            [req.path.encode("utf-8", "surrogateescape"), req.raw_content or b""]
            + [name + b": " + value for name, value in req.headers.fields]
        )
        if not s.detect(seen):
            return
        for key in (flowstate.AS_SENT, flowstate.INPUT):
            if flow.metadata.get(key) is not None:
                flow.metadata[key] = _scrubbed(flow.metadata[key], s)
        if flow.response is None:
            decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
            flow.metadata[flowstate.DENIED] = reasons.SECRET_VALUE_IN_REQUEST
            flow.metadata.pop(flowstate.SECRETS_USED, None)
            flow.response = replies.refusal(
                403, reasons.SECRET_VALUE_IN_REQUEST, decision_id, "a real secret value was sent"
            )


def _scrubbed(doc: Any, s: ScrubSet) -> Any:
    """The same document with every string scrubbed of the real values."""
    if isinstance(doc, str):
        raw = doc.encode("utf-8", "surrogateescape")
        clean = scrub(raw, s)
        return doc if clean == raw else clean.decode("utf-8", "surrogateescape")
    if isinstance(doc, dict):
        return {_scrubbed(k, s): _scrubbed(v, s) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return type(doc)(_scrubbed(v, s) for v in doc)
    return doc
