"""The fault suite's harness: a private Kafka broker and PostgreSQL it may kill, an LLM proxy that misbehaves on
demand, the five services as processes on a fresh namespace and database, and counters read from the services'
own state (their tables) and from the topics themselves."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from podbrief.events.topics import EPISODE_DISCOVERED, EPISODE_TRANSCRIBED, INSIGHT_CLUSTERED, INSIGHTS_EXTRACTED
from podbrief_testing import ServiceProcess, SmtpSink, create_database, free_port, scrape_metric

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "faults"
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
# Topics with a consumer in this code base. brief.delivered is published by delivery for downstream systems;
# nothing here consumes it, so nothing can dead-letter it.
CONSUMED = {
    EPISODE_DISCOVERED: "transcription",
    EPISODE_TRANSCRIBED: "extraction",
    INSIGHTS_EXTRACTED: "clustering",
    INSIGHT_CLUSTERED: "delivery",
}
PIPELINE_TOPICS = (EPISODE_DISCOVERED, EPISODE_TRANSCRIBED, INSIGHTS_EXTRACTED, INSIGHT_CLUSTERED)


def _script(name: str, cmd: str, env: dict[str, str], timeout_s: float = 240) -> str:
    done = subprocess.run(
        [str(REPO / "scripts" / name), cmd],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/{name} {cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


class PrivateKafka:
    """A broker of the suite's own (own ports, data, pid file): the suite kills it, so it must not be the
    shared one."""

    def __init__(self, root: Path) -> None:
        self.env = {
            "PODBRIEF_KAFKA_PORT": str(free_port()),
            "PODBRIEF_KAFKA_CONTROLLER_PORT": str(free_port()),
            "PODBRIEF_KAFKA_DIR": str(root),
        }
        self.bootstrap = ""

    def start(self, keep_data: bool = False) -> str:
        self.bootstrap = _script("kafka.sh", "start", {**self.env, "KAFKA_KEEP_DATA": "1" if keep_data else "0"})
        return self.bootstrap

    def kill(self) -> None:
        _script("kafka.sh", "kill", self.env)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """SIGSTOP the broker for the block: every produce and fetch hangs meanwhile, as with a stalled node."""
        import signal

        pid = int((Path(self.env["PODBRIEF_KAFKA_DIR"]) / "kafka.pid").read_text().strip())
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        _script("kafka.sh", "stop", self.env)


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.env = {"PODBRIEF_PG_PORT": str(free_port()), "PODBRIEF_PG_DIR": str(root)}
        self.url = ""

    def start(self, keep_data: bool = False) -> str:
        self.url = _script("postgres.sh", "start", {**self.env, "PG_KEEP_DATA": "1" if keep_data else "0"})
        return self.url

    def restart(self) -> None:
        _script("postgres.sh", "restart", self.env)

    def stop(self) -> None:
        _script("postgres.sh", "stop", self.env)

    @property
    def dsn(self) -> str:
        return self.url.replace("postgresql+asyncpg://", "postgresql://")

    def create_database(self, name: str) -> str:
        return create_database(self.url, name)


class LlamaServer:
    """One llama-server for the whole suite (the same binary, model and flags as the embedded one)."""

    def __init__(self, log_path: Path) -> None:
        from podbrief_extraction.settings import ExtractionSettings

        # The small packaged model: the fault suite checks recovery, not insight quality.
        s = ExtractionSettings(model_preset="tiny").llama
        self.port = free_port()
        self.log_path = log_path
        binary = s.binary if s.binary.is_absolute() else REPO / s.binary
        self.cmd = [
            str(binary),
            *("-m", str(s.gguf), "--host", "127.0.0.1", "--port", str(self.port)),
            *("-t", str(s.thread_count), "-tb", str(s.thread_count), "-c", str(s.ctx_size), "-np", str(s.parallel)),
            *("--no-webui", "--alias", "embedded"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LlamaServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError("llama-server not healthy after 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FaultProxy:
    """An HTTP proxy on loopback in front of the LLM. Each request takes the next fault from a queue: "500"
    (an error status), "hang" (no answer until after the client's timeout, then a dropped connection),
    "garbage" (200 with a body that is not JSON), "bad_content" (200 with a well-formed completion whose
    content is not JSON). With the queue empty it passes requests through."""

    def __init__(self, upstream_port: int, hang_s: float = 25.0) -> None:
        self.upstream_port = upstream_port
        self.hang_s = hang_s
        self.faults: list[str] = []
        self.log: list[tuple[float, str, str]] = []  # (time, path, what happened)
        self.in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    fault = outer.faults.pop(0) if outer.faults and self.path.endswith("/completions") else ""
                    outer.in_flight += 1
                    outer.log.append((time.monotonic(), self.path, fault or "pass"))
                try:
                    if fault == "500":
                        self._reply(500, b'{"error": {"message": "injected internal error"}}')
                    elif fault == "hang":
                        time.sleep(outer.hang_s)
                        self.close_connection = True
                    elif fault == "garbage":
                        self._reply(200, b'{"choices": [{"message": {"content": "{\\"insi')
                    elif fault == "bad_content":
                        answer = {
                            "choices": [{"message": {"role": "assistant", "content": "{not json"}}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                        }
                        self._reply(200, json.dumps(answer).encode())
                    else:
                        conn = http.client.HTTPConnection("127.0.0.1", outer.upstream_port, timeout=600)
                        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
                        conn.request(method, self.path, body=body or None, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        self._reply(resp.status, data, resp.getheader("Content-Type") or "application/json")
                        conn.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-proxy", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, faults: list[str]) -> None:
        with self._lock:
            self.faults = list(faults)

    def completions(self) -> int:
        return sum(1 for _, path, _ in self.log if path.endswith("/completions"))


@dataclass
class Infra:
    kafka: PrivateKafka
    pg: PrivatePostgres
    proxy: FaultProxy
    feed_url: str
    episode_guids: list[str]


@dataclass
class Row:
    scenario: str
    messages_in: int
    messages_out: int
    wire_duplicates: int
    effect_duplicates: int
    lost: int
    dead_lettered: int
    briefs: str
    recovery_s: float | None
    note: str = ""
    # Services that exited on their own during the scenario and were restarted by the suite playing their
    # orchestrator (Pipeline.supervise), with how often: a dependency outage may end a service's core task.
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def restarts_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.restarts.items())) or "0"


@dataclass
class WireStats:
    records: dict[str, int] = field(default_factory=dict)
    distinct: dict[str, int] = field(default_factory=dict)
    keys: dict[str, list[str]] = field(default_factory=dict)
    dlq: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return sum(self.records[t] - self.distinct[t] for t in self.records)


def read_topics(bootstrap: str, namespace: str, topics: list[str]) -> dict[str, list[Any]]:
    """Every record now in these topics (read to their end with a throwaway, group-less consumer)."""

    async def go() -> dict[str, list[Any]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        out: dict[str, list[Any]] = {t: [] for t in topics}
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            parts: list[TopicPartition] = []
            cluster = await consumer._client.fetch_all_metadata()
            for t in topics:
                for p in cluster.partitions_for_topic(namespace + t) or set():
                    parts.append(TopicPartition(namespace + t, p))
            if not parts:
                return out
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            end = await consumer.end_offsets(parts)
            pending = {tp for tp in parts if end[tp] > 0}
            deadline = time.monotonic() + 30
            while pending and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, msgs in batch.items():
                    out[tp.topic[len(namespace) :]].extend(msgs)
                    if msgs and msgs[-1].offset + 1 >= end[tp]:
                        pending.discard(tp)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def wire_stats(bootstrap: str, namespace: str) -> WireStats:
    topics = [*PIPELINE_TOPICS, *(t + ".dlq" for t in PIPELINE_TOPICS)]
    got = read_topics(bootstrap, namespace, topics)
    stats = WireStats()
    for t in PIPELINE_TOPICS:
        # Records without an event id are not the pipeline's (the poison a test injects): not counted here.
        ids = [i for m in got[t] if (i := dict(m.headers or ()).get("event_id", b"").decode())]
        stats.records[t] = len(ids)
        stats.distinct[t] = len(set(ids))
        stats.keys[t] = sorted({(m.key or b"").decode() for m in got[t]})
        stats.dlq[t] = [
            {k: v.decode("utf-8", "replace") for k, v in (m.headers or ())} | {"_value": m.value[:200].hex()}
            for m in got[t + ".dlq"]
        ]
    return stats


@dataclass
class State:
    """What the services hold: read from their own tables."""

    transcripts: set[str]
    extracted: dict[str, str]  # episode id -> status
    insights: dict[str, set[str]]  # episode id -> insight ids
    clustered: set[str]
    delivery_insights: set[str]
    ledger: list[dict[str, Any]]
    outbox_total: int
    outbox_unsent: int

    @property
    def all_insights(self) -> set[str]:
        return set().union(*self.insights.values()) if self.insights else set()


async def _read_state(dsn: str) -> State:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:

        async def rows(sql: str) -> list[Any]:
            try:
                return list(await conn.fetch(sql))
            except asyncpg.UndefinedTableError:
                return []

        insights: dict[str, set[str]] = {}
        for r in await rows("SELECT episode_id, insight_id FROM extraction_insights"):
            insights.setdefault(str(r["episode_id"]), set()).add(str(r["insight_id"]))
        outbox = await rows("SELECT count(*) AS n, count(*) FILTER (WHERE sent_at IS NULL) AS u FROM ingest_outbox")
        return State(
            transcripts={str(r[0]) for r in await rows("SELECT episode_id FROM transcription_transcripts")},
            extracted={str(r[0]): r[1] for r in await rows("SELECT episode_id, status FROM extraction_episodes")},
            insights=insights,
            clustered={str(r[0]) for r in await rows("SELECT insight_id FROM clustering_members")},
            delivery_insights={str(r[0]) for r in await rows("SELECT insight_id FROM delivery_insights")},
            ledger=[
                dict(r)
                for r in await rows("SELECT subscriber_id, brief_date, status, attempts, detail FROM delivery_ledger")
            ],
            outbox_total=int(outbox[0]["n"]) if outbox else 0,
            outbox_unsent=int(outbox[0]["u"]) if outbox else 0,
        )
    finally:
        await conn.close()


def read_state(dsn: str) -> State | None:
    """None while the database cannot be reached (it is being restarted)."""
    try:
        return asyncio.run(_read_state(dsn))
    except (TimeoutError, OSError):
        return None
    except Exception as exc:  # asyncpg's connection errors have no common base with OSError
        if type(exc).__module__.startswith("asyncpg"):
            return None
        raise


metric = scrape_metric


class Pipeline:
    """The five services as processes on a namespace and database of their own."""

    def __init__(self, infra: Infra, workdir: Path, smtp: SmtpSink, scenario: str, **overrides: dict[str, str]) -> None:
        self.infra = infra
        self.smtp = smtp
        self.scenario = scenario
        tag = uuid.uuid4().hex[:10]
        self.namespace = f"f{tag}."
        self.db_url = infra.pg.create_database(f"faults_{tag}")
        self.dsn = self.db_url.replace("postgresql+asyncpg://", "postgresql://")
        self.admin_key = secrets.token_urlsafe(16)
        self.workdir = workdir
        ports = {name: free_port() for name in SERVICES}
        loopback = '["127.0.0.0/8"]'
        common = {
            "BUS__KIND": "kafka",
            "BUS__KAFKA__BOOTSTRAP_SERVERS": infra.kafka.bootstrap,
            "BUS__KAFKA__NAMESPACE": self.namespace,
            # A killed member's partitions move to its replacement after this (the broker's minimum), not 30 s.
            "BUS__KAFKA__SESSION_TIMEOUT_MS": "6000",
            "BUS__KAFKA__REQUEST_TIMEOUT_MS": "10000",
            "DB__URL": self.db_url,
            "HTTP__ADMIN_API_KEY": self.admin_key,
            "LOG_LEVEL": "INFO",
        }
        extra: dict[str, dict[str, str]] = {
            "ingest": {
                "NET__ALLOWED_NETWORKS": loopback,
                "BACKFILL_LIMIT": str(len(infra.episode_guids)),
                # A killed replica's claimed outbox rows and feed polls are taken over after the lease.
                "LEASE_S": "12",
                "FETCH_DEADLINE_S": "10",
                "OUTBOX_SWEEP_S": "1",
                "POLL_TICK_S": "1",
            },
            "transcription": {"NET__ALLOWED_NETWORKS": loopback},
            "extraction": {
                # The suite's llama-server runs the small packaged model: the service uses its preset.
                "MODEL_PRESET": "tiny",
                "LLM__BASE_URL": infra.proxy.base_url,
                "LLM__BACKOFF_BASE_S": "0.3",
                "LLM__BACKOFF_MAX_S": "3",
                "LLM__BREAKER_COOLDOWN_S": "3",
            },
            "clustering": {"QDRANT__PATH": str(workdir / "qdrant")},
            "delivery": {
                "SMTP__HOST": "127.0.0.1",
                "SMTP__PORT": str(smtp.port),
                "SMTP__RETRY_BACKOFF_S": "0.2",
                "SMTP__TIMEOUT_S": "10",
                "SIGNING_SECRET": secrets.token_urlsafe(32),
                "SCHEDULER_ENABLED": "false",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['delivery']}",
            },
        }
        self.procs: dict[str, ServiceProcess] = {}
        self.supervise = False
        self.crashes: dict[str, int] = {}
        log_dir = ARTIFACTS / scenario
        shutil.rmtree(log_dir, ignore_errors=True)
        for name in SERVICES:
            values = {**common, **extra[name], **overrides.get(name, {}), "DATA_DIR": str(workdir / name)}
            env = {f"{name.upper()}_{k}": v for k, v in values.items()}
            self.procs[name] = ServiceProcess(name, env, ports[name], log_dir)

    def start(self) -> Pipeline:
        for p in self.procs.values():
            p.start()
        for p in self.procs.values():
            p.wait_ready(timeout_s=180)
        return self

    def stop(self) -> None:
        for p in self.procs.values():
            p.stop()

    def url(self, name: str) -> str:
        return self.procs[name].base_url

    @property
    def admin(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    def restart(self, name: str) -> None:
        self.procs[name].start()
        self.procs[name].wait_ready(timeout_s=180)

    def check_alive(self) -> None:
        """A service whose core task dies exits on purpose, for its orchestrator to restart it (Compose runs
        them `restart: unless-stopped`). With `supervise` on, this plays that orchestrator and counts the
        restarts; off, an exit fails the scenario."""
        for p in self.procs.values():
            if p.proc is not None and p.proc.poll() is not None:
                if not self.supervise:
                    raise AssertionError(f"[{self.scenario}] {p.name} died ({p.proc.returncode}):\n{p.tail()}")
                self.crashes[p.name] = self.crashes.get(p.name, 0) + 1
                if self.crashes[p.name] > 5:
                    raise AssertionError(f"[{self.scenario}] {p.name} is crash-looping:\n{p.tail()}")
                p.start()

    def logs(self, lines: int = 12) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(lines)}" for p in self.procs.values())

    def state(self) -> State | None:
        return read_state(self.dsn)

    def wait(self, cond: Callable[[], bool], what: str, timeout_s: float, check_alive: bool = True) -> float:
        """Poll until cond() holds; returns the monotonic time it first held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return time.monotonic()
            if check_alive:
                self.check_alive()
            time.sleep(0.1)
        raise AssertionError(f"[{self.scenario}] timed out after {timeout_s}s waiting for {what}\n{self.logs()}")

    def subscribe(self, email: str, interests: str) -> str:
        before = len(self.smtp.messages)
        r = httpx.post(
            self.url("delivery") + "/v1/subscribers", json={"email": email, "interests": interests}, timeout=30
        )
        assert r.status_code == 202, r.text
        msgs = self.smtp.wait_for(before + 1, timeout_s=30)
        mine = [m for m in msgs[before:] if m["To"] == email]
        assert mine, f"no confirmation email for {email}"
        body = mine[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        import re

        token = re.search(r"/confirm\?t=([\w.\-~%]+)", body)
        assert token, body
        r = httpx.post(self.url("delivery") + "/v1/subscribers/confirm", json={"token": token.group(1)}, timeout=30)
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        return str(r.json().get("id") or r.json().get("subscriber_id") or "")

    def add_feed(self) -> None:
        r = httpx.post(
            self.url("ingest") + "/v1/feeds", json={"url": self.infra.feed_url}, headers=self.admin, timeout=60
        )
        assert r.status_code == 201, r.text

    def run_deliveries(self) -> dict[str, Any]:
        r = httpx.post(
            self.url("delivery") + "/v1/admin/deliveries/run", json={"force": True}, headers=self.admin, timeout=120
        )
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result

    def briefs_to(self, email: str) -> int:
        # Confirmation emails carry no List-Unsubscribe header; briefs do.
        return sum(1 for m in self.smtp.messages if m["To"] == email and m["List-Unsubscribe"])


@contextmanager
def pipeline(
    infra: Infra, workdir: Path, smtp: SmtpSink, scenario: str, **overrides: dict[str, str]
) -> Iterator[Pipeline]:
    p = Pipeline(infra, workdir, smtp, scenario, **overrides)
    try:
        yield p.start()
    finally:
        p.stop()


LEGEND = """\
- messages in: distinct events the workload must carry (discovered, transcribed and extracted per episode,
  clustered per insight); out: those whose effect is in the consuming service's tables (transcript, extraction
  result, cluster membership, delivery candidate); lost = in - out.
- duplicates (wire): records on the four topics minus distinct event ids (at-least-once redelivery and
  re-publishing; allowed). Duplicate effects: Qdrant points beyond the distinct insights plus emails beyond one
  brief per subscriber per day (must be 0).
- recovery s: from the fault (or its end, where it lasts) until every effect is in place; for SMTP, from the
  end of the refusal to the brief sent; for the baseline, the time to drain the workload with no fault.
- supervisor restarts: services that exited on their own during the fault (a dead core task makes a service exit
  for its orchestrator to restart it) and were restarted by the suite, which plays that orchestrator; a killed
  service restarted on purpose is not counted.
"""


def results_table(rows: list[Row]) -> str:
    head = (
        "| scenario | what happened | messages in | out | duplicates (wire) | duplicate effects | lost "
        "| dead-lettered | supervisor restarts | briefs sent/expected | recovery s |"
    )
    lines = [head, "|" + " --- |" * 11]
    for r in rows:
        rec = "–" if r.recovery_s is None else f"{r.recovery_s:.1f}"
        lines.append(
            f"| {r.scenario} | {r.note} | {r.messages_in} | {r.messages_out} | {r.wire_duplicates} "
            f"| {r.effect_duplicates} | {r.lost} | {r.dead_lettered} | {r.restarts_text} | {r.briefs} | {rec} |"
        )
    return "\n".join(lines)


def write_results(rows: list[Row], wall_s: float, load: dict[str, Any] | None = None, *, complete: bool = False) -> str:
    """results.md and results.json under ARTIFACTS; `complete`: every scenario of the suite ran (what
    tests/faults/publish.py requires before the table goes into the README)."""
    from bench.report import machine

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    table = results_table(rows)
    (ARTIFACTS / "results.md").write_text(
        "# Fault injection results (`make test-faults`)\n\n"
        + table
        + f"\n\nSuite wall time: {wall_s:.0f} s\n\n"
        + LEGEND
    )
    (ARTIFACTS / "results.json").write_text(
        json.dumps(
            {
                "wall_s": round(wall_s, 1),
                "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": machine(),
                "load": load,
                "complete": complete,
                "rows": [r.__dict__ for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    return table


def kill_when(p: Pipeline, name: str, sql: str, ready: Callable[[int], bool], timeout_s: float) -> tuple[int, float]:
    """SIGKILL one service the moment `sql` (one integer) satisfies `ready`, polling its database every few
    milliseconds over one connection. Returns the value seen and the monotonic time of the kill."""

    async def go() -> tuple[int, float]:
        import asyncpg

        conn = await asyncpg.connect(p.dsn)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    value = int(await conn.fetchval(sql) or 0)
                except asyncpg.UndefinedTableError:
                    value = 0
                if ready(value):
                    p.procs[name].kill()
                    return value, time.monotonic()
                p.check_alive()
                await asyncio.sleep(0.005)
        finally:
            await conn.close()
        raise AssertionError(f"[{p.scenario}] {name}: condition {sql!r} never held\n{p.logs()}")

    return asyncio.run(go())


@contextmanager
def smtp_holding_data(sink: SmtpSink) -> Iterator[threading.Event]:
    """Hold every message at the DATA stage (accepted by nobody yet) until the block ends; the event is set once
    a message is held. A client that disconnects meanwhile cancels the hook, so its message is never stored."""
    handler: Any = sink._controller.handler
    original = handler.handle_DATA
    held = threading.Event()
    release = threading.Event()

    async def hold(server: Any, session: Any, envelope: Any) -> str:
        held.set()
        await asyncio.to_thread(release.wait)
        result: str = await original(server, session, envelope)
        return result

    handler.handle_DATA = hold
    try:
        yield held
    finally:
        release.set()
        handler.handle_DATA = original
