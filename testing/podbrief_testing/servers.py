"""Real servers on loopback for tests and benchmarks: an HTTP server whose routes a test sets (feeds, audio,
transcripts, with ETags, delays and status codes), and an SMTP sink that keeps every message it receives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    # A handler may replace the static answer: it gets the request headers and returns a Route.
    dynamic: Callable[[dict[str, str]], Route] | None = None


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with routes set by the test. Supports HEAD, Range-less GET,
    ETag/Last-Modified conditional requests and counts hits per path."""

    def __init__(self, port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.hits[path] = outer.hits.get(path, 0) + 1
                outer.requests.append((path, headers))
                route = outer.routes.get(path)
                if route is None:
                    route = Route(b"not found", "text/plain", 404)
                if route.dynamic is not None:
                    route = route.dynamic(headers)
                if route.delay_s:
                    time.sleep(route.delay_s)
                etag = route.headers.get("ETag")
                if etag and headers.get("if-none-match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    try:
                        self.wfile.write(route.body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

            def do_GET(self) -> None:
                self._answer(head=False)

            def do_HEAD(self) -> None:
                self._answer(head=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, body: bytes | str, content_type: str = "application/octet-stream", **kw: Any) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = Route(data, content_type, **kw)
        return self.url(path)

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives. `refuse` makes it
    answer a temporary (4xx) or permanent (5xx) error instead."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: str | None = None  # e.g. "451 try later" or "550 no such user"
        outer = self

        class Handler:
            async def handle_RCPT(
                self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
            ) -> str:
                if outer.refuse:
                    return outer.refuse
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(msg, EmailMessage)
                outer.messages.append(msg)
                outer.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                return "250 Message accepted"

        # aiosmtpd's Controller probes its own port once started, so port 0 cannot be passed through:
        # reserve a free loopback port first.
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    @property
    def port(self) -> int:
        server: Any = self._controller.server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int = 1, timeout_s: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)


# Ports free_port has handed out in this process: the kernel may hand a released port out again.
_HANDED_OUT: set[int] = set()
_LOWEST = 10_000


def free_port() -> int:
    """A loopback TCP port that nothing holds now, for a server a test starts a moment later, and that this
    process has not handed out before. It is drawn below the kernel's ephemeral range, so that in that moment
    no server that binds port 0 itself (a LoopbackServer, an SMTP sink) and no outgoing connection can take it:
    a fault-suite broker once found its port taken, most likely by the feed server started just before it. A
    kernel whose ephemeral range leaves no room below it gets one the kernel picks."""
    import itertools
    import secrets
    import socket

    def bindable(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
            return True

    def kernel_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    top = ephemeral_low()
    below = [_LOWEST + secrets.randbelow(top - _LOWEST) for _ in range(200)] if top - _LOWEST >= 1_000 else []
    # Lazily: the kernel is asked only when no port below its range was free.
    for port in itertools.chain(below, (kernel_port() for _ in range(1_000))):
        if port not in _HANDED_OUT and bindable(port):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no loopback port left that this process has not handed out")


def ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux's default 32768 where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
