"""A small fault-injecting HTTP proxy for the S3 tests (stdlib only: http.server + http.client).

It listens on 127.0.0.1 and forwards every request (method, path, query, headers, body) to one
upstream endpoint (the moto server), except the ones it is told to fail:

* a random share of all requests (`fail_share`), each failed as one of `kinds`;
* EVERY request a rule's predicate matches (`fail_always`), whatever the share.

A failed request never reaches the upstream, so it had no effect there: ``"500"`` and ``"503"``
answer with an S3-style error document, ``"drop"`` closes the connection without an answer.

>>> with FaultProxy("http://127.0.0.1:9") as proxy:
...     proxy.url.startswith("http://127.0.0.1:")
True
>>> delta_log_conditional_put(Request("PUT", "/b/t/_delta_log/00000000000000000003.json", "", {"if-none-match": "*"}))
True
>>> delete_objects(Request("POST", "/b", "delete", {}))
True
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Headers that belong to one hop, not to the request (plus Expect: http.client cannot do 100-continue).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
FAULT_KINDS = ("500", "503", "drop")
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
}


@dataclass(frozen=True)
class Request:
    """What a predicate sees of a request; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: dict[str, str]

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


Predicate = Callable[[Request], bool]


def delete_objects(request: Request) -> bool:
    """S3 DeleteObjects: ``POST /bucket?delete``."""
    return request.method == "POST" and "delete" in request.params


def delta_log_conditional_put(request: Request) -> bool:
    """A Delta commit on S3: a put-if-absent (``If-None-Match``) of a ``_delta_log/`` entry."""
    return request.method == "PUT" and "/_delta_log/" in request.path and "if-none-match" in request.headers


@dataclass
class _Rule:
    predicate: Predicate
    kind: str
    matched: int = 0


class FaultProxy:
    """Forward to `upstream`, failing what it is told to; a context manager (stops on exit).

    `fail_share` of all requests fail (seeded, so a run is repeatable as far as thread
    interleaving allows), each as one of `kinds`. Counters: `requests`, `forwarded`, `faults`
    (per kind) and `recent` (the last requests, for assertion messages).
    """

    def __init__(
        self,
        upstream: str,
        fail_share: float = 0.0,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int = 0,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.kinds = tuple(kinds)
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {self.kinds}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.fail_share = fail_share
        self.timeout = timeout
        self.rules: list[_Rule] = []
        self.requests = 0
        self.forwarded = 0
        self.faults: Counter[str] = Counter()
        self.recent: deque[str] = deque(maxlen=200)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_always(self, predicate: Predicate, kind: str = "503") -> _Rule:
        """Fail every request `predicate` matches (as `kind`); returns the rule (its `matched` counts)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        rule = _Rule(predicate, kind)
        with self._lock:
            self.rules.append(rule)
        return rule

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections: their threads end now
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def summary(self) -> str:
        return f"{self.requests} requests, {self.forwarded} forwarded, faults {dict(self.faults)}"

    # -- called by the handler threads -------------------------------------------------------

    def _verdict(self, request: Request) -> str | None:
        """The fault to inject for this request, or None to forward it."""
        with self._lock:
            self.requests += 1
            for rule in self.rules:
                if rule.predicate(request):
                    rule.matched += 1
                    self.faults[rule.kind] += 1
                    return rule.kind
            if self.fail_share and self._random.random() < self.fail_share:
                kind = self._random.choice(self.kinds)
                self.faults[kind] += 1
                return kind
            self.forwarded += 1
            return None

    def _note(self, text: str) -> None:
        with self._lock:
            self.recent.append(text)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            (self._connections.add if open_ else self._connections.discard)(connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect
        timeout = proxy.timeout  # an idle connection's thread ends after this

        def setup(self) -> None:
            super().setup()
            proxy._track(self.connection, True)

        def finish(self) -> None:
            proxy._track(self.connection, False)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            body = self._body()
            path, _, query = self.path.partition("?")
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(self.command, path, query, headers)
            kind = proxy._verdict(request)
            proxy._note(f"{self.command} {self.path} -> {kind or 'forwarded'}")
            if kind == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if kind is not None:
                status, code, message = _ERRORS[kind]
                self._answer(status, [("Content-Type", "application/xml")], _error_xml(code, message))
                return
            self._forward(body)

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout)
            try:
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            except OSError:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            finally:
                upstream.close()
            if self.command == "HEAD":  # the object's length, with no body
                self._answer(response.status, kept, b"", keep_length=True)
            else:
                self._answer(response.status, [(k, v) for k, v in kept if k.lower() != "content-length"], data)

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes, keep_length: bool = False) -> None:
            self.send_response_only(status)
            for name, value in headers:
                self.send_header(name, value)
            if not keep_length:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    return Handler


def _error_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultproxy</RequestId></Error>"
    ).encode()
