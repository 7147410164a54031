"""SwapSecrets: placeholders in, real values out to the approved upstream only.

A placeholder is swapped only when (a) it belongs to the calling agent, (b) the policy listed
its secret for this request and (c) the secret's own host binding admits the destination.
Anything else is a 403 with a reason code, so a raw placeholder never leaves the proxy.
Positions searched: every header (Basic credentials decoded), path, query and body.
On the way back, answers are scrubbed by ``ScrubResponses`` (``egress.proxy.addons.scrub``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote

import orjson
from mitmproxy import http

from egress import reasons
from egress.audit import new_decision_id
from egress.identity.model import Identity
from egress.policy import Decision
from egress.proxy import flowstate, replies
from egress.secrets import SecretStore
from egress.secrets.approve import SwapRefused, approve
from egress.secrets.placeholders import CORE_MARKER, CORE_RE, CORE_RE_BYTES
from egress.secrets.released import Released


class SwapSecrets:
    def __init__(self, store: SecretStore, released: Released | None = None) -> None:
        self.store = store
        self.released = released

    # -- request ---------------------------------------------------------------------------
    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        decision: Decision | None = flow.metadata.get(flowstate.DECISION)
        if identity is None or decision is None or not decision.allow:
            return  # Authorize answered already; never swap without an allow
        try:
            await self._swap(flow, identity, decision)
        except SwapRefused as r:
            decision_id = flow.metadata.setdefault(flowstate.DECISION_ID, new_decision_id())
            flow.metadata[flowstate.DENIED] = r.reason
            flow.metadata.pop(flowstate.SECRETS_USED, None)
            flow.response = replies.refusal(403, r.reason, decision_id, r.detail)

    def _cores_in_request(self, flow: http.HTTPFlow) -> set[str]:
        req = flow.request
        cores: set[str] = set(CORE_RE.findall(req.path))
        decoded_path = unquote(req.path)
        if set(CORE_RE.findall(decoded_path)) - cores:
            raise SwapRefused(reasons.PLACEHOLDER_OBFUSCATED, "percent-encoded placeholder in URL")
        for name, value in req.headers.items(multi=True):
            cores.update(CORE_RE.findall(value))
            basic = _basic_credentials(name, value)
            if basic is not None:
                cores.update(CORE_RE.findall(basic))
        if req.raw_content:
            body = req.get_content(strict=False) or b""
            cores.update(m.decode() for m in CORE_RE_BYTES.findall(body))
        return cores

    async def _swap(self, flow: http.HTTPFlow, identity: Identity, decision: Decision) -> None:
        cores = self._cores_in_request(flow)
        if not cores:
            return
        scheme = flow.request.scheme
        refs, pairs = await approve(
            self.store,
            identity,
            cores,
            decision,
            host=flow.request.host.lower(),
            encrypted=scheme == "https",
            scheme=scheme,
            released=self.released,
            address=flow.metadata.get(flowstate.DIAL_ADDRESS),
        )
        _apply(flow.request, pairs)
        # ask for an identity-encoded answer so an echoed value can be found and scrubbed
        flow.request.headers["accept-encoding"] = "identity"
        flow.metadata[flowstate.SECRETS_USED] = sorted(ref.name for ref in refs)


def _basic_credentials(name: str, value: str) -> str | None:
    if name.lower() not in ("authorization", "proxy-authorization"):
        return None
    scheme, _, param = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(param.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def _replace_all(
    text: str, pairs: list[tuple[str, str]], encode: Callable[[str], str] = lambda v: v
) -> str:
    for value, placeholder in pairs:
        if placeholder in text:
            text = text.replace(placeholder, encode(value))
        core = CORE_RE.search(placeholder)
        if core and core.group(0) in text:
            text = text.replace(core.group(0), encode(value))
    return text


def _apply(req: http.Request, pairs: list[tuple[str, str]]) -> None:
    if CORE_MARKER in req.path:
        req.path = _replace_all(req.path, pairs, lambda v: quote(v, safe=""))
    touched = {
        name
        for name, value in req.headers.fields
        if CORE_MARKER.encode() in value
        or name.lower() in (b"authorization", b"proxy-authorization")
    }
    for raw_name in touched:
        name = raw_name.decode("latin-1")
        values = req.headers.get_all(name)
        new_values = []
        for value in values:
            basic = _basic_credentials(name, value)
            if basic is not None and CORE_RE.search(basic):
                swapped = _replace_all(basic, pairs)
                value = "Basic " + base64.b64encode(swapped.encode()).decode()
            else:
                value = _replace_all(value, pairs)
            new_values.append(value)
        if new_values != values:
            req.headers.set_all(name, new_values)
    if req.raw_content:
        content = req.get_content(strict=False) or b""
        if CORE_RE_BYTES.search(content):
            ctype = req.headers.get("content-type", "").lower()
            if ctype.startswith("application/x-www-form-urlencoded"):
                enc = lambda v: quote_plus(v, safe="")  # noqa: E731
            elif "json" in ctype:
                enc = lambda v: orjson.dumps(v)[1:-1].decode()  # noqa: E731
            else:
                enc = lambda v: v  # noqa: E731
            text = content.decode("utf-8", "surrogateescape")
            req.set_content(_replace_all(text, pairs, enc).encode("utf-8", "surrogateescape"))
