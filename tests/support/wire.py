"""An agent's view of an answer, byte for byte: HTTP/1.1 and HTTP/2 clients through the proxy.

Both open a CONNECT tunnel by hand, then TLS with the proxy's CA, and return exactly what came
back: headers as sent (names and values), the body with only the message framing removed
(chunks joined, content-codings left as they are) and the trailers.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions

from tests.support.proxy import ProxyProcess, basic, parse_response, raw_connect


@dataclass
class Got:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = True  # False: the connection or stream was cut before the end
    reason: bytes = b""  # HTTP/1.1 status line's reason phrase, raw (HTTP/2 has none)

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.decode("latin-1").lower() == name.lower():
                return v.decode("latin-1")
        return None


def tls_tunnel(
    proxy: ProxyProcess, agent, port: int, alpn: str, host: str = "localhost"
) -> ssl.SSLSocket:
    sock, answer = raw_connect(proxy.port, f"{host}:{port}", basic(agent.name, agent.token))
    status, _, _ = parse_response(answer)
    assert status == 200, answer
    ctx = proxy.client_context()
    ctx.set_alpn_protocols([alpn])
    tls = ctx.wrap_socket(sock, server_hostname=host)
    tls.settimeout(15)
    return tls


def request(
    proxy: ProxyProcess,
    agent,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    *,
    http2: bool = False,
    host: str = "localhost",
) -> Got:
    """One request through a CONNECT tunnel to ``host:port`` (a name the origin's certificate
    holds: localhost or 127.0.0.1)."""
    fn = _h2_request if http2 else _h1_request
    return fn(proxy, agent, port, method, path, headers or {}, body, host)


def _h1_request(proxy, agent, port, method, path, headers, body, host="localhost") -> Got:
    sock = tls_tunnel(proxy, agent, port, "http/1.1", host)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, OSError, ssl.SSLError):
        pass
    finally:
        sock.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines_b = head.split(b"\r\n")
    status_line = lines_b[0].split(b" ", 2)
    status = int(status_line[1])
    fields = [tuple(x.strip() for x in ln.split(b":", 1)) for ln in lines_b[1:] if b":" in ln]
    got = Got(status, fields, rest)  # type: ignore[arg-type]
    got.reason = status_line[2] if len(status_line) > 2 else b""
    te = (got.header("transfer-encoding") or "").lower()
    length = got.header("content-length")
    if "chunked" in te:
        got.body, got.trailers, got.complete = _dechunk(rest)
    elif length is not None:
        got.body, got.complete = rest[: int(length)], len(rest) >= int(length)
    return got


def _dechunk(data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bool]:
    body = b""
    while True:
        line, sep, data = data.partition(b"\r\n")
        if not sep:
            return body, [], False
        size = int(line.split(b";")[0], 16)
        if size == 0:
            trailers = []
            for tl in data.split(b"\r\n"):
                if b":" in tl:
                    k, v = tl.split(b":", 1)
                    trailers.append((k.strip(), v.strip()))
            return body, trailers, data.endswith(b"\r\n")
        if len(data) < size + 2:
            return body + data[:size], [], False
        body += data[:size]
        data = data[size + 2 :]


def _h2_request(proxy, agent, port, method, path, headers, body, host="localhost") -> Got:
    sock = tls_tunnel(proxy, agent, port, "h2", host)
    assert sock.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    fields = [
        (":method", method),
        (":path", path),
        (":authority", f"{host}:{port}"),
        (":scheme", "https"),
    ]
    fields += [(k.lower(), v) for k, v in headers.items()]
    conn.send_headers(1, fields, end_stream=not body)
    if body:
        conn.send_data(1, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    got = Got(0, [], b"", complete=False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            done = False
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    got.status = int(dict(event.headers)[b":status"])
                    got.headers = [(k, v) for k, v in event.headers if not k.startswith(b":")]
                elif isinstance(event, h2.events.DataReceived):
                    got.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    got.trailers = list(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    got.complete = done = True
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    done = True
            sock.sendall(conn.data_to_send())
            if done:
                break
    except (TimeoutError, OSError, ssl.SSLError, h2.exceptions.ProtocolError):
        pass
    finally:
        sock.close()
    return got
