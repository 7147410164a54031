"""DecisionLog: exactly one event per answered request and per refused CONNECT.

Hooks: ``response`` (every answered request, proxy refusals included), ``error`` (requests
that ended without a full answer: upstream failure, client gone), ``http_connect_error``
(refused CONNECTs). Answers given before a flow exists (the head-size guard's 431, the 400 for
a request line mitmproxy cannot parse) reach ``unflowed`` through ``egress.proxy.guards``.
``flow.metadata[LOGGED]`` guarantees a flow is logged once. Events are handed to the batched
writer without blocking; ``done`` drains it on shutdown.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from mitmproxy import connection, http, tcp

from egress import __version__, reasons
from egress.audit import DecisionLogWriter, new_decision_id
from egress.audit.events import event_result, make_event, mask_input, utc_timestamp
from egress.identity.model import Identity
from egress.policy import Decision
from egress.proxy import flowstate, guards
from egress.proxy.flowstate import ConnRegistry


class DecisionLog:
    def __init__(
        self,
        writer: DecisionLogWriter,
        proxy_id: str | None = None,
        *,
        mask_query: bool = True,
        mask_headers: bool = False,
        observers: list[Callable[[dict[str, Any]], None]] | None = None,
        conns: ConnRegistry | None = None,
    ) -> None:
        self.conns = conns
        self.observers = observers or []
        self.writer = writer
        self.mask_query = mask_query
        self.mask_headers = mask_headers
        self.labels = {
            "proxy_id": proxy_id or socket.gethostname(),
            "version": __version__,
            "component": "proxy",
        }
        self.events = 0

    async def running(self) -> None:
        guards.set_reporter(self.unflowed)
        if not self.writer.started:
            await self.writer.start()

    def unflowed(self, client: connection.Client, status: int, reason: str, detail: str) -> None:
        """One event for an answer given before mitmproxy made a flow: who (if the tunnel's
        CONNECT identified the agent), from where, which status and why."""
        state = self.conns.peek(client) if self.conns else None
        identity = state.identity if state is not None else None
        target = state.connect_target if state is not None else None
        event = make_event(
            decision_id=new_decision_id(),
            timestamp=utc_timestamp(time.time()),
            kind="request",
            agent=identity.as_policy_input() if identity else None,
            policy_input=None,
            request={
                "method": "",
                "scheme": "https" if target and client.tls else "http" if target else "",
                "host": target[0] if target else "",
                "port": target[1] if target else None,
                "path": "",
                "http_version": "HTTP/1.1",
                "client": _address(client.peername),
            },
            result=event_result(None, allow=False, reason=reason),
            secrets=[],
            status=status,
            bytes_in=0,
            bytes_out=0,
            decision_ms=None,
            total_ms=None,
            error=f"{reason}: {detail}"[:300],
            labels=self.labels,
        )
        self._emit(event)

    async def done(self) -> None:
        await self.writer.close()

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        self._log(flow, kind="connect")

    def response(self, flow: http.HTTPFlow) -> None:
        self._log(flow, kind="request")

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.request.method == "CONNECT":
            return
        self._log(flow, kind="request")

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """One event per WebSocket message WebSocketSecrets refused (the upgrade has its own)."""
        refused: dict[str, Any] | None = flow.metadata.pop(flowstate.WS_REFUSED, None)
        if refused is None:
            return
        event = self._event(flow, "request")  # the upgrade request, as request events show it
        event.update(
            kind="websocket",
            decision_id=refused["decision_id"],
            timestamp=utc_timestamp(time.time()),
            result=event_result(
                flow.metadata.get(flowstate.DECISION), allow=False, reason=refused["reason"]
            ),
            secrets=[],
            status=None,
            bytes={"request": refused["bytes"], "response": 0}
            if refused["from_client"]
            else {"request": 0, "response": refused["bytes"]},
            metrics={"decision_ms": None, "total_ms": None},
            error=f"{refused['reason']}: websocket closed {refused.get('code', 1008)} "
            f"{refused['detail']}".strip()[:300],
        )
        self._emit(event)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        # a message refused before it was whole (too big) never reaches websocket_message
        self.websocket_message(flow)

    def tcp_end(self, flow: tcp.TCPFlow) -> None:
        self._log_tunnel(flow)

    def tcp_error(self, flow: tcp.TCPFlow) -> None:
        self._log_tunnel(flow)

    def _log_tunnel(self, flow: tcp.TCPFlow) -> None:
        """One event for a passthrough tunnel, when it closes: bytes and duration."""
        state = self.conns.peek(flow.client_conn) if self.conns else None
        if state is None or not state.tunnel or flow.metadata.get(flowstate.LOGGED):
            return
        flow.metadata[flowstate.LOGGED] = True
        t = state.tunnel
        decision: Decision = t["decision"]
        identity: Identity = t["identity"]
        sent, received = flow.metadata.get(flowstate.TUNNEL_BYTES, [0, 0])
        # the proxy closed it: the kill switch on a chunk, or the sweeper (revoked, killed, idle)
        closed_by = (
            "agent_killed: tunnel closed by the kill switch"
            if flow.metadata.get(flowstate.TUNNEL_KILLED)
            else state.closed_by
        )
        started = flow.client_conn.timestamp_start
        event = make_event(
            decision_id=t["decision_id"],
            timestamp=utc_timestamp(started),
            kind="tunnel",
            agent=identity.as_policy_input(),
            policy_input=mask_input(t["input"], query=self.mask_query, headers=self.mask_headers),
            request={
                "method": "CONNECT",
                "scheme": "",
                "host": t["host"],
                "port": t["port"],
                "path": "",
                "http_version": "HTTP/1.1",
                "client": _address(flow.client_conn.peername),
            },
            result=event_result(
                decision,
                allow=True,
                reason=decision.reason,
                upstream=reasons.UPSTREAM_ERROR if flow.error and not closed_by else None,
                mode="passthrough",
            ),
            secrets=[],
            status=None,
            bytes_in=sent,
            bytes_out=received,
            decision_ms=t.get("decision_ms"),
            total_ms=round((time.time() - started) * 1000, 3),
            error=closed_by or (flow.error.msg[:300] if flow.error else None),
            labels=self.labels,
        )
        self._emit(event)

    def _log(self, flow: http.HTTPFlow, *, kind: str) -> None:
        if flow.metadata.get(flowstate.LOGGED):
            return
        flow.metadata[flowstate.LOGGED] = True
        self._emit(self._event(flow, kind))

    def _emit(self, event: dict[str, Any]) -> None:
        try:
            orjson.dumps(event)
        except orjson.JSONEncodeError:
            # bytes that are not UTF-8 (decoded by mitmproxy as lone surrogates) cannot be JSON;
            # one such event would stop the writer and every event after it
            event = _json_safe(event)
        for observe in self.observers:
            observe(event)  # before submit: the writer adds seq and prev_hash in place
        self.writer.submit(event)
        self.events += 1

    def _event(self, flow: http.HTTPFlow, kind: str) -> dict[str, Any]:
        req = flow.request
        identity: Identity | None = flow.metadata.get(flowstate.IDENTITY)
        decision: Decision | None = flow.metadata.get(flowstate.DECISION)
        denied: str | None = flow.metadata.get(flowstate.DENIED)
        upstream_reason: str | None = flow.metadata.get(flowstate.UPSTREAM_REASON)
        allow = bool(decision and decision.allow and not denied)
        would_deny: str | None = flow.metadata.get(flowstate.WOULD_DENY)
        reason = _reason(decision, denied, would_deny, upstream_reason)
        status, error = _status_and_error(flow, upstream_reason)
        # never ``req.path`` after the swap: the event describes what the agent sent
        sent = flow.metadata.get(flowstate.AS_SENT) or {
            "method": req.data.method.decode("utf-8", "surrogateescape"),
            "path": req.path.split("?", 1)[0],
            "bytes_in": len(req.raw_content or b""),
        }
        return make_event(
            decision_id=flow.metadata.get(flowstate.DECISION_ID) or new_decision_id(),
            timestamp=utc_timestamp(req.timestamp_start),
            kind=kind,
            agent=identity.as_policy_input() if identity else None,
            policy_input=mask_input(
                flow.metadata.get(flowstate.INPUT),
                query=self.mask_query,
                headers=self.mask_headers,
            ),
            request={
                "method": sent["method"],
                "scheme": req.scheme,
                "host": req.host,
                "port": req.port,
                "path": sent["path"] if kind == "request" else "",
                "http_version": req.http_version,
                "client": _address(flow.client_conn.peername),
            },
            result=event_result(
                decision,
                allow=allow,
                reason=reason,
                upstream=upstream_reason,
                mode="report" if would_deny else "enforce",
                would_deny=bool(would_deny),
            ),
            secrets=list(flow.metadata.get(flowstate.SECRETS_USED, [])),
            status=status,
            bytes_in=sent["bytes_in"],
            bytes_out=_bytes_out(flow),
            decision_ms=flow.metadata.get(flowstate.DECISION_MS),
            total_ms=_total_ms(flow),
            error=error,
            labels=self.labels,
        )


def _reason(
    decision: Decision | None, denied: str | None, would_deny: str | None, upstream: str | None
) -> str:
    if denied:
        return denied
    if would_deny:
        return would_deny  # report mode: what the policy said, allowed anyway
    if upstream == reasons.HTTP_MALFORMED:
        return reasons.HTTP_MALFORMED
    if decision is not None:
        return decision.reason
    return reasons.DEFAULT_DENY


def _status_and_error(flow: http.HTTPFlow, upstream: str | None) -> tuple[int | None, str | None]:
    error = None
    if flow.error is not None:
        # mitmproxy's error text names hosts and TLS failures; upstream bytes it may quote
        # are cut (they can echo a swapped secret), here as well as in proxy/guards.py
        text = guards.elide_bytes(flow.error.msg)
        error = f"{upstream or reasons.UPSTREAM_ERROR}: {text}"[:300]
    answered: int | None = flow.metadata.get(flowstate.ANSWERED_STATUS)
    if answered is not None:
        return answered, error  # mitmproxy refused the upstream's response and answered itself
    if flow.response is not None:
        return flow.response.status_code, error
    if upstream in (
        reasons.UPSTREAM_TLS_FAILED,
        reasons.UPSTREAM_CONNECT_FAILED,
        reasons.DIAL_NOT_AUTHORIZED,
    ):
        return 502, error  # what mitmproxy answers the agent for a failed upstream dial
    if upstream == reasons.HTTP_MALFORMED:
        return flow.metadata.get(flowstate.ERROR_STATUS), error
    return None, error


def _bytes_out(flow: http.HTTPFlow) -> int:
    streamed: int | None = flow.metadata.get(flowstate.RESPONSE_BYTES)
    if streamed is not None:
        return streamed
    return len(flow.response.raw_content or b"") if flow.response is not None else 0


def _total_ms(flow: http.HTTPFlow) -> float | None:
    resp = flow.response
    end = (resp.timestamp_end if resp is not None and resp.timestamp_end else None) or (
        flow.error.timestamp if flow.error is not None else None
    )
    return round((end - flow.request.timestamp_start) * 1000, 3) if end else None


def _address(peer: Any) -> str:
    """``ip:port`` of the agent's side of the connection ("" when unknown)."""
    if not peer:
        return ""
    host, port = str(peer[0]), peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _json_safe(value: Any) -> Any:
    """A copy with every string's undecodable bytes written as ``\\xNN`` text."""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte (U+D800..U+DC7F)
            raw = value.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
