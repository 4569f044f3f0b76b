"""Test doubles that are real servers on loopback: an HTTP server for feeds and audio, and an SMTP sink.
Shipped with the library so every service's tests (and the benchmarks) share one implementation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = int(probe.getsockname()[1])
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=free_port)

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


class ServiceProcess:
    """One service as its own OS process (`podbrief serve <name>`), for end-to-end and fault tests. Its JSON
    logs go to a file so a failing test can show them."""

    def __init__(self, name: str, env: dict[str, str], port: int, log_dir: Any) -> None:
        import os
        import pathlib

        self.name = name
        self.port = port
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = pathlib.Path(log_dir) / f"{name}.log"
        self.proc: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        import subprocess
        import sys

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "podbrief.cli", "serve", self.name, "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                r = httpx.get(self.base_url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s ({last}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else int(self.proc.returncode)
        self.proc.send_signal(signal.SIGTERM)
        try:
            return int(self.proc.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return int(self.proc.wait())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Kafka and PostgreSQL as a test sees them: read a topic, a group's offsets, publish events, a fresh database.
# Synchronous wrappers, so process-level tests (which wait on OS processes) need no event loop of their own.


async def _partitions(bootstrap: str, topic: str) -> list[Any]:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [desc] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if desc.get("error_code"):
        return []
    return [TopicPartition(topic, p["partition"]) for p in desc.get("partitions", ())]


async def _topic_records(bootstrap: str, topic: str, timeout_s: float) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    tps = await _partitions(bootstrap, topic)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            # An explicit offset, not seek_to_beginning(): its lazy reset races the fetcher, which can then move
            # the position past records it never hands out.
            consumer.seek(tp, begin[tp])
        # Progress is counted from the records returned, not from position(): the fetcher may move a position
        # past records it prefetched but has not handed out yet, which would end the read early and empty.
        following = {tp: begin[tp] for tp in tps}
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(following[tp] < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                for m in msgs:
                    if m.offset < end[tp]:
                        out.append(m)
                    following[tp] = max(following[tp], m.offset + 1)
        return out
    finally:
        await consumer.stop()


def topic_records(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record on `topic` now (aiokafka ConsumerRecords), read without a consumer group; [] if no topic."""
    import asyncio

    return asyncio.run(_topic_records(bootstrap, topic, timeout_s))


async def _group_offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer

    tps = await _partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        end = await consumer.end_offsets(tps) if tps else {}
        committed = {tp.partition: int((await consumer.committed(tp)) or 0) for tp in tps}
        return committed, {tp.partition: int(off) for tp, off in end.items()}
    finally:
        await consumer.stop()


def group_offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets of `topic` per partition for consumer `group` (full names, namespace included).
    A member of the group resumes at the committed offset; end minus committed is the group's lag."""
    import asyncio

    return asyncio.run(_group_offsets(bootstrap, topic, group))


async def _publish_events(bootstrap: str, topic: str, events: Sequence[Any], partitions: int) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from podbrief.events.codec import encode

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=16 << 20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, encode(e), key=e.key.encode(), headers=[("event_type", e.event_type.encode())])
            for e in events
        ]
        placed = [await f for f in futures]
        return [(int(m.partition), int(m.offset)) for m in placed]
    finally:
        await producer.stop()


def publish_events(bootstrap: str, topic: str, events: Sequence[Any], partitions: int = 6) -> list[tuple[int, int]]:
    """Publish podbrief events in order to `topic` (created with `partitions` if missing, as a service would);
    returns each event's (partition, offset)."""
    import asyncio

    return asyncio.run(_publish_events(bootstrap, topic, events, partitions))


def create_database(pg_url: str, name: str) -> str:
    """CREATE DATABASE `name` on the server of `pg_url` (postgresql+asyncpg://...) and return its URL."""
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return pg_url.rsplit("/", 1)[0] + "/" + name


def scrape_metric(base_url: str, name: str, *, timeout_s: float = 10.0, **labels: str) -> float:
    """The sum of a metric's samples on a service's /metrics whose labels include `labels`."""
    import httpx

    total = 0.0
    for line in httpx.get(base_url + "/metrics/", timeout=timeout_s).text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
