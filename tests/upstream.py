"""A real HTTP server on 127.0.0.1 for source-client tests, with faults injected on request.

Routes map a path to a function ``(request) -> Reply``. Faults are queued and consumed in order by the
first requests they match, so a test says exactly which request misbehaves and how:

    server.fault(Fault("status", status=429, headers={"Retry-After": "1"}), path="/oqmdapi/formationenergy")
    server.fault(Fault("drop"))                    # close the connection without an answer
    server.fault(Fault("slow", seconds=2.0))       # answer after the client's timeout
    server.fault(Fault("truncate"))                # half the body, then close
    server.fault(Fault("truncate_json"))           # half the body, honest Content-Length

Every request is logged (method, path, query, headers) for assertions.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Names in lower case."""
    base_url: str

    def int_param(self, name: str, default: int) -> int:
        return int(self.query.get(name, default))


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})


@dataclass
class Fault:
    kind: str
    """``status``, ``drop``, ``slow``, ``truncate`` (connection closed mid-body), ``truncate_json``
    (a short but complete HTTP body) or ``replace`` (serve ``reply`` instead)."""
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reply: Reply | None = None


Route = Callable[[Request], Reply]


class Upstream:
    """Start with ``with Upstream(routes) as server:``; ``server.url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, routes: dict[str, Route]):
        self.routes = routes
        self.requests: list[Request] = []
        self._faults: list[tuple[Callable[[Request], bool], Fault]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault(
        self, fault: Fault, path: str | None = None, when: Callable[[Request], bool] | None = None
    ) -> None:
        """Queue ``fault`` for the next request to ``path`` (any path if ``None``) passing ``when``."""

        def matches(request: Request) -> bool:
            return (path is None or request.path == path) and (when is None or when(request))

        with self._lock:
            self._faults.append((matches, fault))

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for k, (matches, fault) in enumerate(self._faults):
                if matches(request):
                    del self._faults[k]
                    return fault
        return None

    def _handler_class(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                host = self.headers.get("Host", "")
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Request("GET", parts.path, query, headers, f"http://{host}")
                with upstream._lock:
                    upstream.requests.append(request)
                fault = upstream._take_fault(request)
                route = upstream.routes.get(parts.path) or upstream.routes.get(parts.path.rstrip("/"))
                if fault is not None and fault.kind == "drop":
                    self._drop()
                    return
                if fault is not None and fault.kind == "status":
                    self._send(Reply(fault.status, b'{"detail": "injected fault"}', dict(fault.headers)))
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.seconds)
                if fault is not None and fault.kind == "replace" and fault.reply is not None:
                    self._send(fault.reply)
                    return
                reply = route(request) if route is not None else Reply(404, b'{"detail": "Not Found"}')
                if fault is not None and fault.kind == "truncate":
                    self._send(reply, cut=len(reply.body) // 2)
                elif fault is not None and fault.kind == "truncate_json":
                    self._send(Reply(reply.status, reply.body[: len(reply.body) // 2], reply.headers))
                else:
                    self._send(reply)

            def _send(self, reply: Reply, cut: int | None = None) -> None:
                body = reply.body
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body if cut is None else body[:cut])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                if cut is not None:
                    self._drop()

            def _drop(self) -> None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

        return Handler
