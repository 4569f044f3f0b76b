"""The five services as OS processes on real Kafka and PostgreSQL, fed from loopback podcast feeds, watched on the
bus: what the end-to-end benchmark (bench/e2e.py) runs them with. `Services` starts them once; episodes are then
released one at a time or on a schedule, and each is followed from the feed update to the first composed brief
that carries one of its insights, stage by stage (each event's own `occurred_at`), with the handler time and CPU
each service spent on it."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import httpx
from podbrief_testing import scrape_metric

from bench import e2e_stages as stages
from bench.e2e_audio import MIME, Episode
from bench.e2e_probe import TreeProbe

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
STAGES = ("discovered", "transcribed", "extracted", "clustered")
DEFAULT_PG = "postgresql+asyncpg://podbrief:podbrief@127.0.0.1:54329/podbrief"
# Three readers: one with no stated interests (every insight qualifies for them) and two with topics, so the
# ranking does real work; each delivery run composes and emails a brief for each.
READERS = (
    ("reader-all@example.org", ""),
    ("reader-energy@example.org", "home energy, heat pumps, batteries, solar panels and electricity prices"),
    ("reader-work@example.org", "small AI models, sleep, productivity and the working week"),
)


def log(msg: str) -> None:
    sys.stderr.write(f"[e2e {datetime.now(UTC):%H:%M:%S}] {msg}\n")
    sys.stderr.flush()


# --- infrastructure ------------------------------------------------------------------------------------------


@dataclass
class Infra:
    kafka: str
    pg_url: str
    started: list[str] = field(default_factory=list)


def _script(name: str, verb: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "scripts" / name), verb], capture_output=True, text=True, cwd=REPO, check=False)


def _ensure(script: str, what: str, running_address: str, infra: Infra) -> str:
    """The address of the local server `script` manages, starting it (and noting that) if it is not running."""
    if _script(script, "status").returncode == 0:
        return running_address
    log(f"starting {what} (scripts/{script} start)")
    out = _script(script, "start")
    if out.returncode != 0:
        raise RuntimeError(f"scripts/{script} start failed:\n{out.stderr[-2000:]}")
    infra.started.append(script)
    return out.stdout.strip().splitlines()[-1]


@contextmanager
def infrastructure() -> Iterator[Infra]:
    """PODBRIEF_TEST_KAFKA / PODBRIEF_TEST_PG when set; else the local ones, started here only if they are not
    running (and then stopped at the end: never one this run did not start)."""
    infra = Infra(os.environ.get("PODBRIEF_TEST_KAFKA", ""), os.environ.get("PODBRIEF_TEST_PG", ""))
    try:
        if not infra.kafka:
            local = "127.0.0.1:" + os.environ.get("PODBRIEF_KAFKA_PORT", "9092")
            infra.kafka = _ensure("kafka.sh", "Kafka", local, infra)
        if not infra.pg_url:
            port = os.environ.get("PODBRIEF_PG_PORT", "54329")  # as scripts/postgres.sh reads it
            infra.pg_url = _ensure("postgres.sh", "PostgreSQL", DEFAULT_PG.replace(":54329/", f":{port}/"), infra)
        yield infra
    finally:
        for name in reversed(infra.started):
            log(f"stopping what this run started: scripts/{name} stop")
            _script(name, "stop")


async def _admin_sql(pg_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(pg_url: str, name: str) -> str:
    asyncio.run(_admin_sql(pg_url, f'CREATE DATABASE "{name}"'))
    return pg_url.rsplit("/", 1)[0] + "/" + name


def drop_database(pg_url: str, name: str) -> None:
    try:
        asyncio.run(_admin_sql(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except Exception as exc:  # a leftover database is harmless; say so and go on
        log(f"could not drop database {name}: {exc}")


# --- feeds ---------------------------------------------------------------------------------------------------


def feed_xml(base_url: str, slug: str, title: str, items: list[tuple[Episode, datetime]]) -> str:
    """RSS 2.0 + iTunes for one show, newest first, enclosures on loopback."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">',
        "<channel>",
        f"<title>{escape(title)}</title>",
        f"<link>{escape(base_url)}/shows/{slug}</link>",
        f"<description>{escape(title)}: a benchmark podcast served from loopback.</description>",
        "<language>en</language>",
        f"<itunes:author>{escape(title)}</itunes:author>",
    ]
    for ep, released in sorted(items, key=lambda x: x[1], reverse=True):
        out += [
            "<item>",
            f"<title>{escape(ep.title)}</title>",
            f'<guid isPermaLink="false">{escape(ep.guid)}</guid>',
            f"<pubDate>{format_datetime(released, usegmt=True)}</pubDate>",
            f"<description>{escape(ep.title)} of {escape(title)}.</description>",
            f'<enclosure url={quoteattr(f"{base_url}/audio/{ep.path.name}")} length="{ep.path.stat().st_size}" '
            f'type="{MIME}"/>',
            f"<itunes:duration>{round(ep.duration_s)}</itunes:duration>",
            "</item>",
        ]
    out += ["</channel>", "</rss>"]
    return "\n".join(out) + "\n"


# --- watching the bus ----------------------------------------------------------------------------------------


class Observer(threading.Thread):
    """A consumer group of its own on the run's namespaced topics: when each episode was discovered,
    transcribed, extracted and clustered, from the events' own `occurred_at` (set by the producing service)."""

    def __init__(self, bootstrap: str, namespace: str) -> None:
        super().__init__(name="bench-e2e-observer", daemon=True)
        self.bootstrap, self.namespace = bootstrap, namespace
        self.lock = threading.Lock()
        self.at: dict[str, dict[str, float]] = {s: {} for s in STAGES}
        self.insights: dict[str, int] = {}  # episode -> insights extracted
        self.clustered: dict[str, set[str]] = {}  # episode -> insight ids clustered
        self.dead: dict[str, int] = {}  # dead-letter topic -> messages
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by the main thread
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        from podbrief.bus.kafka import KafkaTransport
        from podbrief.events import decode
        from podbrief.events.models import EpisodeDiscovered, EpisodeTranscribed, InsightClustered, InsightsExtracted
        from podbrief.events.topics import (
            EPISODE_DISCOVERED,
            EPISODE_TRANSCRIBED,
            INSIGHT_CLUSTERED,
            INSIGHTS_EXTRACTED,
            dlq_topic,
        )
        from podbrief.settings import KafkaSettings

        stages = [EPISODE_DISCOVERED, EPISODE_TRANSCRIBED, INSIGHTS_EXTRACTED, INSIGHT_CLUSTERED]
        # The dead-letter topics too: a failed episode is seen here at once, without scraping the services.
        topics = [*stages, *(dlq_topic(t) for t in stages)]
        transport = KafkaTransport(KafkaSettings(bootstrap_servers=self.bootstrap, namespace=self.namespace))
        await transport.start()
        consumer = transport.consumer(topics, "bench-e2e-observer")
        try:
            await transport.ensure_topics(topics)
            await consumer.start()
            self.ready.set()
            while not self._stop_flag.is_set():
                for rec in await consumer.poll(0.5, 500):
                    if rec.topic.endswith(".dlq"):
                        with self.lock:
                            self.dead[rec.topic] = self.dead.get(rec.topic, 0) + 1
                        continue
                    ev = decode(rec.value)
                    ts = ev.occurred_at.timestamp()
                    with self.lock:
                        if isinstance(ev, EpisodeDiscovered):
                            self.at["discovered"].setdefault(str(ev.payload.episode.episode_id), ts)
                        elif isinstance(ev, EpisodeTranscribed):
                            self.at["transcribed"].setdefault(str(ev.payload.episode.episode_id), ts)
                        elif isinstance(ev, InsightsExtracted):
                            eid = str(ev.payload.episode.episode_id)
                            self.at["extracted"].setdefault(eid, ts)
                            self.insights[eid] = len(ev.payload.insights)
                        elif isinstance(ev, InsightClustered):
                            eid = str(ev.payload.episode.episode_id)
                            self.clustered.setdefault(eid, set()).add(str(ev.payload.insight.insight_id))
                            self.at["clustered"][eid] = max(ts, self.at["clustered"].get(eid, 0.0))
        finally:
            await consumer.stop()
            await transport.stop()

    def done_at(self, eid: str) -> float | None:
        """When the episode's last insight was clustered (or, with none, when extraction finished)."""
        with self.lock:
            if eid not in self.insights:
                return None
            n = self.insights[eid]
            if n == 0:
                return self.at["extracted"][eid]
            if len(self.clustered.get(eid, ())) < n:
                return None
            return self.at["clustered"][eid]

    def clustered_total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.clustered.values())

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=15)


# --- delivery ------------------------------------------------------------------------------------------------


metric = scrape_metric


@dataclass
class Reader:
    email: str
    subscriber_id: str
    api_key: str


class DeliveryDriver(threading.Thread):
    """Composes briefs as soon as delivery has consumed new clustered insights: while the bus holds clustered
    insights that no run has covered yet, it reads delivery's consumed-message counter every quarter second (and only
    then: scrapes cost delivery CPU) and, when it grew, runs `POST /v1/admin/deliveries/run` (force, a fresh brief
    date each run, so what earlier runs sent is excluded) and reads each reader's stored brief. The first brief
    that carries one of an episode's insights stops that episode's clock."""

    def __init__(self, base_url: str, admin_key: str, readers: list[Reader], observer: Observer) -> None:
        super().__init__(name="bench-e2e-delivery", daemon=True)
        self.base_url, self.admin = base_url, {"X-API-Key": admin_key}
        self.readers = readers
        self.observer = observer
        self.first_seen: dict[str, float] = {}  # episode id -> when a composed brief first carried it
        self.runs: list[dict[str, Any]] = []
        self.consumed_for = 0.0  # delivery's consumed count when the latest run started
        self.drain = threading.Event()
        self.error: BaseException | None = None
        self._stop_flag = threading.Event()
        self._day = date.today()
        self.lock = threading.Lock()

    def consumed(self) -> float:
        return metric(
            self.base_url, "podbrief_delivery_messages_total", topic="podbrief.insight.clustered.v1", status="ok"
        )

    def run_once(self, consumed: float) -> int:
        day = self._day + timedelta(days=len(self.runs))
        started = time.time()
        r = httpx.post(
            self.base_url + "/v1/admin/deliveries/run",
            json={"force": True, "date": day.isoformat()},
            headers=self.admin,
            timeout=300,
        )
        r.raise_for_status()
        composed = time.time()
        new_items = 0
        picks = []
        for reader in self.readers:
            b = httpx.get(
                f"{self.base_url}/v1/subscribers/{reader.subscriber_id}/briefs/{day.isoformat()}",
                headers={"Authorization": f"Bearer {reader.api_key}"},
                timeout=30,
            )
            if b.status_code == 404:
                picks.append(0)
                continue
            b.raise_for_status()
            items = b.json().get("items", [])
            picks.append(len(items))
            new_items += len(items)
            with self.lock:
                for item in items:
                    self.first_seen.setdefault(str(item["episode_id"]), composed)
        with self.lock:
            self.consumed_for = consumed
            self.runs.append(
                {
                    "day": day.isoformat(),
                    "started": started,
                    "seconds": round(composed - started, 3),
                    "picks": picks,
                    "consumed": consumed,
                }
            )
        return new_items

    def run(self) -> None:
        try:
            while not self._stop_flag.is_set():
                pending = self.observer.clustered_total() > self.consumed_for
                consumed = self.consumed() if pending or self.drain.is_set() else self.consumed_for
                if consumed > self.consumed_for or self.drain.is_set():
                    new = self.run_once(consumed)
                    if self.drain.is_set() and new == 0:
                        self.drain.clear()  # nothing left that any reader would get
                self._stop_flag.wait(0.25)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=60)


def start_services(
    infra: Infra,
    namespace: str,
    db_url: str,
    tmp: Path,
    smtp_port: int,
    logs: Path,
    preset: str | None = None,
    llm_url: str | None = None,
) -> tuple[dict[str, Any], str, dict[str, float]]:
    """The five services as processes; `preset` names extraction's model preset (unset: its default), `llm_url`
    an OpenAI-compatible endpoint for it instead of its embedded llama-server."""
    from podbrief_testing import ServiceProcess, free_port

    admin_key = secrets.token_urlsafe(16)
    ports = {name: free_port() for name in SERVICES}
    common = {
        "BUS__KIND": "kafka",
        "BUS__KAFKA__BOOTSTRAP_SERVERS": infra.kafka,
        "BUS__KAFKA__NAMESPACE": namespace,
        "DB__URL": db_url,
        "HTTP__ADMIN_API_KEY": admin_key,
        "LOG_LEVEL": "INFO",
    }
    extra = {
        "ingest": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]'},
        "transcription": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]'},
        "extraction": ({"MODEL_PRESET": preset} if preset else {})
        | ({"LLM__BASE_URL": llm_url, "LLM__MODEL": "scripted"} if llm_url else {}),
        "clustering": {"QDRANT__PATH": str(tmp / "qdrant")},
        "delivery": {
            "SMTP__HOST": "127.0.0.1",
            "SMTP__PORT": str(smtp_port),
            "SIGNING_SECRET": secrets.token_urlsafe(32),
            "SCHEDULER_ENABLED": "false",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['delivery']}",
            "QUIET_DAY_POLICY": "shorter",
        },
    }
    procs: dict[str, Any] = {}
    spawned: dict[str, float] = {}
    for name in SERVICES:
        env = {f"{name.upper()}_{k}": v for k, v in {**common, **extra[name], "DATA_DIR": str(tmp / name)}.items()}
        spawned[name] = time.monotonic()
        procs[name] = ServiceProcess(name, env, ports[name], logs).start()
    return procs, admin_key, spawned


def wait_all_ready(procs: dict[str, Any], spawned: dict[str, float], timeout_s: float) -> dict[str, float]:
    """Seconds from spawn to a green /readyz, per service (all started at once, so they contend for the CPU
    as they would on one small host)."""
    ready: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(ready) < len(procs):
        for name, p in procs.items():
            if name in ready:
                continue
            if p.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.proc.returncode}:\n{p.tail()}")
            with suppress(httpx.HTTPError):
                if httpx.get(p.base_url + "/readyz", timeout=2).status_code == 200:
                    ready[name] = round(time.monotonic() - spawned[name], 1)
        if time.monotonic() > deadline:
            missing = [n for n in procs if n not in ready]
            raise TimeoutError(f"not ready after {timeout_s}s: {missing}")
        time.sleep(0.25)
    return ready


def sign_up_readers(delivery: str, smtp: Any) -> list[Reader]:
    readers = []
    for email, interests in READERS:
        seen = len(smtp.messages)
        r = httpx.post(
            delivery + "/v1/subscribers",
            json={"email": email, "interests": interests, "quiet_day_policy": "shorter"},
            timeout=60,
        )
        r.raise_for_status()
        messages = smtp.wait_for(seen + 1, timeout_s=60)
        if len(messages) <= seen:
            raise RuntimeError(f"no confirmation email for {email}")
        body = messages[-1].get_body(preferencelist=("plain",)).get_content()
        token = re.search(r"/confirm\?t=([\w.\-~%]+)", body)
        if token is None:
            raise RuntimeError(f"no confirmation link in the email to {email}")
        c = httpx.post(delivery + "/v1/subscribers/confirm", json={"token": token.group(1)}, timeout=60)
        c.raise_for_status()
        readers.append(Reader(email, c.json()["subscriber_id"], c.json()["api_key"]))
    return readers


def dead_letters(procs: dict[str, Any]) -> dict[str, int]:
    return {
        name: int(metric(procs[name].base_url, f"podbrief_{name}_dead_lettered_total"))
        for name in ("transcription", "extraction", "clustering", "delivery")
    }


async def _delete_topics(bootstrap: str, namespace: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(namespace)]
        if ours:
            await admin.delete_topics(ours)
        return len(ours)
    finally:
        await admin.close()


def delete_topics(bootstrap: str, namespace: str) -> None:
    """The run's own topics (its unique namespace prefix) off the shared broker."""
    try:
        n = asyncio.run(_delete_topics(bootstrap, namespace))
        log(f"deleted {n} topics under {namespace}")
    except Exception as exc:  # leftover topics are harmless; say so and go on
        log(f"could not delete the topics under {namespace}: {exc}")


# --- the services, started once ------------------------------------------------------------------------------


def read_counters(base_url: str) -> dict[str, float]:
    """A service's counters and histogram sums from its /metrics page (podbrief.metrics.running_totals)."""
    from podbrief.metrics import running_totals
    from prometheus_client.parser import text_string_to_metric_families

    page = httpx.get(base_url + "/metrics/", timeout=10)
    page.raise_for_status()
    return running_totals(text_string_to_metric_families(page.text))


@dataclass
class Snapshot:
    """Counters read between two points of a run: CPU per service (process tree), and each service's own
    counters (handler seconds, download and transcription seconds, LLM request seconds and tokens...)."""

    at: float
    cpu_s: dict[str, float]
    counters: dict[str, dict[str, float]]

    def minus(self, before: Snapshot) -> dict[str, Any]:
        used = stages.minus(self.counters, before.counters)
        return {
            "cpu_s": {n: round(self.cpu_s[n] - before.cpu_s[n], 2) for n in SERVICES},
            "handler_s": {n: round(stages.handler_seconds(used, n), 2) for n in SERVICES if n != "ingest"},
            "counters": used,
        }


class Services:
    """The five services on the run's own Kafka namespace and database, their readers signed up, the bus watched
    and briefs composed as soon as delivery has consumed something new. Use as a context manager."""

    def __init__(
        self,
        infra: Infra,
        episodes: list[Episode],
        idle_s: float,
        preset: str | None = None,
        llm_url: str | None = None,
    ) -> None:
        self.infra, self.episodes, self.idle_s, self.preset, self.llm_url = infra, episodes, idle_s, preset, llm_url
        self.unique = uuid.uuid4().hex[:10]
        self.namespace = f"bench{self.unique}."
        self.db_name = f"bench_e2e_{self.unique}"
        self.tmp = Path(f"/tmp/podbrief-bench-e2e-{self.unique}")
        self.logs = REPO / "test-artifacts" / "bench-e2e" / self.unique
        self.procs: dict[str, Any] = {}
        self.probe: TreeProbe | None = None
        self.observer: Observer | None = None
        self.driver: DeliveryDriver | None = None
        self.feeds: dict[str, tuple[str, str]] = {}  # show slug -> (feed url, feed id)
        self.published: dict[str, list[tuple[Episode, datetime]]] = {}
        self.released: dict[str, float] = {}  # episode id -> when its feed update was triggered
        self.ids: dict[int, str] = {}  # episode index -> episode id
        self.startup_s: dict[str, float] = {}
        self.startup_cpu_s: dict[str, float] = {}
        self.idle_cpu_s_per_s: dict[str, float] = {}
        self.admin_key = ""

    def __enter__(self) -> Services:
        from podbrief_testing import LoopbackServer, SmtpSink

        self.tmp.mkdir(parents=True)
        self.db_url = create_database(self.infra.pg_url, self.db_name)
        self.server = LoopbackServer().start()
        self.smtp = SmtpSink().start()
        try:
            for ep in self.episodes:
                self.server.add(f"/audio/{ep.path.name}", ep.path.read_bytes(), MIME)
            log(f"starting the five services (namespace {self.namespace}, database {self.db_name}, logs {self.logs})")
            self.procs, self.admin_key, spawned = start_services(
                self.infra, self.namespace, self.db_url, self.tmp, self.smtp.port, self.logs, self.preset, self.llm_url
            )
            self.probe = TreeProbe({n: p.proc.pid for n, p in self.procs.items()}).start()
            self.startup_s = wait_all_ready(self.procs, spawned, timeout_s=600)
            self.startup_cpu_s = {n: round(v, 1) for n, v in self.probe.cpu_all().items()}
            log(f"ready: {self.startup_s}")
            self.observer = Observer(self.infra.kafka, self.namespace)
            self.observer.start()
            if not self.observer.ready.wait(120) or self.observer.error:
                raise RuntimeError(f"the bus observer did not start: {self.observer.error}")
            readers = sign_up_readers(self.procs["delivery"].base_url, self.smtp)
            # Idle cost: what each service burns doing nothing (consumer polls, health), for the capacity model.
            cpu_a, t_a = self.probe.cpu_all(), time.monotonic()
            time.sleep(self.idle_s)
            cpu_b, t_b = self.probe.cpu_all(), time.monotonic()
            self.idle_cpu_s_per_s = {n: round((cpu_b[n] - cpu_a[n]) / (t_b - t_a), 4) for n in SERVICES}
            self.driver = DeliveryDriver(self.procs["delivery"].base_url, self.admin_key, readers, self.observer)
            self.driver.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.driver is not None and self.driver.is_alive():
            self.driver.stop()
        if self.observer is not None:
            self.observer.stop()
        if self.probe is not None:
            self.probe.stop()
        for p in self.procs.values():
            p.stop()
        self.server.stop()
        self.smtp.stop()
        drop_database(self.infra.pg_url, self.db_name)
        delete_topics(self.infra.kafka, self.namespace)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def snapshot(self) -> Snapshot:
        assert self.probe is not None
        counters = {n: read_counters(self.procs[n].base_url) for n in SERVICES}
        return Snapshot(time.time(), self.probe.cpu_all(), counters)

    def release(self, ep: Episode) -> str:
        """Publish the episode in its show's feed and have ingest poll it now (a new show's feed is registered,
        which polls it); returns the episode id. The clock of the episode starts here."""
        from podbrief.events.ids import episode_id

        ingest, admin = self.procs["ingest"].base_url, {"X-API-Key": self.admin_key}
        items = self.published.setdefault(ep.show_slug, [])
        items.append((ep, datetime.now(UTC)))
        path = f"/feeds/{ep.show_slug}.xml"
        released_at = time.time()
        url = self.server.add(path, feed_xml(self.server.base_url, ep.show_slug, ep.show, items), "application/rss+xml")
        if ep.show_slug not in self.feeds:
            r = httpx.post(ingest + "/v1/feeds", json={"url": url}, headers=admin, timeout=120)
            if r.status_code != 201:
                raise RuntimeError(f"feed registration refused: {r.status_code} {r.text}")
            self.feeds[ep.show_slug] = (url, r.json()["feed"]["id"])
        else:
            r = httpx.post(f"{ingest}/v1/feeds/{self.feeds[ep.show_slug][1]}/poll", headers=admin, timeout=120)
            r.raise_for_status()
        eid = str(episode_id(self.feeds[ep.show_slug][0], ep.guid))
        self.ids[ep.index] = eid
        self.released[eid] = released_at
        log(f"released {ep.guid} ({ep.duration_s:.0f} s of audio)")
        return eid

    def wait_in_brief(self, eids: set[str], deadline: float) -> str | None:
        """Until every episode is clustered, delivery has consumed it all, and a composed brief carries one of
        each episode's insights (those with none are done when extraction is). Returns what failed, if anything;
        at the deadline it returns with the rest unfinished."""
        assert self.observer is not None and self.driver is not None
        observer, driver = self.observer, self.driver
        drained = False
        while time.time() < deadline:
            for name, p in self.procs.items():
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{name} died:\n{p.tail()}")
            for worker in (observer, driver):
                if worker.error is not None:
                    raise RuntimeError(f"{worker.name} failed: {worker.error!r}")
            with observer.lock:
                dead = dict(observer.dead)
            if dead:
                log(f"dead-lettered messages: {dead}")
                return f"dead-lettered messages: {dead}"
            if all(observer.done_at(eid) is not None for eid in eids):
                want = {eid for eid in eids if observer.insights.get(eid, 0) > 0}
                with driver.lock:
                    caught_up = driver.consumed_for >= observer.clustered_total()
                    missing = want - set(driver.first_seen)
                if caught_up and not missing:
                    return None
                if caught_up and missing:
                    # Everything is in delivery: compose until no reader gets anything new, then stop.
                    if not drained:
                        drained = True
                        driver.drain.set()
                    elif not driver.drain.is_set():
                        return None
            time.sleep(0.2)
        return None

    def episode_points(self, ep: Episode) -> dict[str, float | None]:
        """When (Unix seconds) the episode's feed was updated, each of its events occurred, and a composed brief
        first carried it (bench/e2e_stages.py's points)."""
        assert self.observer is not None and self.driver is not None
        eid = self.ids[ep.index]
        points: dict[str, float | None] = {"feed": self.released[eid]}
        with self.observer.lock:
            points.update({stage: self.observer.at[stage].get(eid) for stage in STAGES})
        with self.driver.lock:
            points["brief"] = self.driver.first_seen.get(eid)
        return points

    def episode_row(self, ep: Episode) -> dict[str, Any]:
        """Seconds after the feed update at which the episode reached each stage."""
        assert self.observer is not None
        points = self.episode_points(ep)
        feed = self.released[self.ids[ep.index]]
        row: dict[str, Any] = {"episode": ep.guid, "show": ep.show, "audio_s": ep.duration_s}
        row["clip"] = Path(ep.clip).name
        for stage in STAGES:
            t = points[stage]
            row[f"{stage}_s"] = None if t is None else round(t - feed, 1)
        seen = points["brief"]
        row["in_brief_s"] = None if seen is None else round(seen - feed, 1)
        row["insights"] = self.observer.insights.get(self.ids[ep.index])
        return row

    def totals(self) -> dict[str, Any]:
        """Counters over the whole run (both phases): LLM tokens, chunks, audio transcribed, dead letters, RSS."""
        assert self.probe is not None and self.driver is not None
        extraction, transcription = self.procs["extraction"].base_url, self.procs["transcription"].base_url
        return {
            "tokens": {
                "prompt": int(metric(extraction, "podbrief_extraction_llm_tokens_total", direction="in")),
                "completion": int(metric(extraction, "podbrief_extraction_llm_tokens_total", direction="out")),
            },
            "chunks": metric(extraction, "podbrief_extraction_chunks_total"),
            "transcribed_audio_s": metric(transcription, "podbrief_transcription_audio_seconds_total"),
            "dead_lettered": dead_letters(self.procs),
            "peaks": {n: vars(p) for n, p in self.probe.peaks.items()},
            "delivery_runs": len(self.driver.runs),
            "emails": len(self.smtp.messages),
            "logs": str(self.logs.relative_to(REPO)),
            "namespace": self.namespace,
        }
