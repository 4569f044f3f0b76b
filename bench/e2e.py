"""End to end on CPU: episodes released into loopback podcast feeds over time, through the five services as OS
processes on real Kafka and PostgreSQL, until their insights appear in composed briefs.

    python -m bench.e2e [--episodes 10] [--minutes 5] [--smoke] [--out-dir bench/]

Reports episodes per hour, the time from a feed update to the episode's first insight in a composed brief
(p50/p95), CPU seconds per audio minute per stage (model loading excluded, reported apart) and peak RSS per
service (children included: extraction's llama-server). Writes the `e2e` section through bench/report.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shlex
import signal
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
import numpy as np
from podbrief_testing import scrape_metric

from bench import report
from bench.e2e_audio import MIME, Episode, build
from bench.e2e_probe import TreeProbe

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
STAGES = ("discovered", "transcribed", "extracted", "clustered")
KEY, TITLE, ORDER = "e2e", "End to end: five services on real Kafka", 5
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
            infra.pg_url = _ensure("postgres.sh", "PostgreSQL", DEFAULT_PG, infra)
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
    insights that no run has covered yet, it reads delivery's consumed-message counter every second (and only
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
                self._stop_flag.wait(1.0)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=60)


# --- the run -------------------------------------------------------------------------------------------------


@dataclass
class Config:
    episodes: int
    minutes: float
    shows: int
    interval_s: float
    idle_s: float
    timeout_s: float
    peer_episodes: int
    smoke: bool
    out_dir: Path
    command: str


def start_services(
    infra: Infra, namespace: str, db_url: str, tmp: Path, smtp_port: int, logs: Path
) -> tuple[dict[str, Any], str, dict[str, float]]:
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
        "extraction": {},
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


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def run_pipeline(cfg: Config, episodes: list[Episode], infra: Infra) -> dict[str, Any]:
    from podbrief.events.ids import episode_id
    from podbrief_testing import LoopbackServer, SmtpSink

    unique = uuid.uuid4().hex[:10]
    namespace = f"bench{unique}."
    db_name = f"bench_e2e_{unique}"
    tmp = Path(f"/tmp/podbrief-bench-e2e-{unique}")
    tmp.mkdir(parents=True)
    logs = REPO / "test-artifacts" / "bench-e2e" / unique
    db_url = create_database(infra.pg_url, db_name)
    server = LoopbackServer().start()
    smtp = SmtpSink().start()
    procs: dict[str, Any] = {}
    probe: TreeProbe | None = None
    observer: Observer | None = None
    driver: DeliveryDriver | None = None
    try:
        for ep in episodes:
            server.add(f"/audio/{ep.path.name}", ep.path.read_bytes(), MIME)
        log(f"starting the five services (namespace {namespace}, database {db_name}, logs {logs})")
        procs, admin_key, spawned = start_services(infra, namespace, db_url, tmp, smtp.port, logs)
        probe = TreeProbe({n: p.proc.pid for n, p in procs.items()}).start()
        startup_s = wait_all_ready(procs, spawned, timeout_s=600)
        startup_cpu = probe.cpu_all()
        log(f"ready: {startup_s}")
        observer = Observer(infra.kafka, namespace)
        observer.start()
        if not observer.ready.wait(120) or observer.error:
            raise RuntimeError(f"the bus observer did not start: {observer.error}")
        readers = sign_up_readers(procs["delivery"].base_url, smtp)

        # Idle cost: what each service burns doing nothing (consumer polls, health), for the capacity model.
        cpu_a, t_a = probe.cpu_all(), time.monotonic()
        time.sleep(cfg.idle_s)
        cpu_b, t_b = probe.cpu_all(), time.monotonic()
        idle_rate = {n: round((cpu_b[n] - cpu_a[n]) / (t_b - t_a), 4) for n in SERVICES}

        driver = DeliveryDriver(procs["delivery"].base_url, admin_key, readers, observer)
        driver.start()
        ingest = procs["ingest"].base_url
        admin = {"X-API-Key": admin_key}
        feeds: dict[str, tuple[str, str]] = {}  # slug -> (feed url, feed id)
        published: dict[str, list[tuple[Episode, datetime]]] = {}
        released: dict[str, float] = {}
        ids: dict[int, str] = {}
        cpu0, wall0 = probe.cpu_all(), time.time()
        log(f"releasing {len(episodes)} episodes, one every {cfg.interval_s:g} s")
        for ep in episodes:
            wait = wall0 + ep.index * cfg.interval_s - time.time()
            if wait > 0:
                time.sleep(wait)
            now = datetime.now(UTC)
            items = published.setdefault(ep.show_slug, [])
            items.append((ep, now))
            path = f"/feeds/{ep.show_slug}.xml"
            released_at = time.time()
            url = server.add(path, feed_xml(server.base_url, ep.show_slug, ep.show, items), "application/rss+xml")
            if ep.show_slug not in feeds:
                r = httpx.post(ingest + "/v1/feeds", json={"url": url}, headers=admin, timeout=120)
                if r.status_code != 201:
                    raise RuntimeError(f"feed registration refused: {r.status_code} {r.text}")
                feeds[ep.show_slug] = (url, r.json()["feed"]["id"])
            else:
                r = httpx.post(f"{ingest}/v1/feeds/{feeds[ep.show_slug][1]}/poll", headers=admin, timeout=120)
                r.raise_for_status()
            eid = str(episode_id(feeds[ep.show_slug][0], ep.guid))
            ids[ep.index] = eid
            released[eid] = released_at
            log(f"released {ep.guid} ({ep.duration_s:.0f} s of audio)")

        deadline = wall0 + cfg.timeout_s
        drained = False
        failure: str | None = None
        # Wait for every episode to be clustered, delivery to have consumed it all, and a brief to carry it.
        while time.time() < deadline:
            for name, p in procs.items():
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{name} died:\n{p.tail()}")
            for worker in (observer, driver):
                if worker.error is not None:
                    raise RuntimeError(f"{worker.name} failed: {worker.error!r}")
            with observer.lock:
                dead = dict(observer.dead)
            if dead:
                failure = f"dead-lettered messages: {dead}"
                log(failure)
                break
            done = {eid: observer.done_at(eid) for eid in ids.values()}
            if all(v is not None for v in done.values()):
                want = {eid for eid in ids.values() if observer.insights.get(eid, 0) > 0}
                with driver.lock:
                    caught_up = driver.consumed_for >= observer.clustered_total()
                    missing = want - set(driver.first_seen)
                if caught_up and not missing:
                    break
                if caught_up and missing:
                    # Everything is in delivery: compose until no reader gets anything new, then stop.
                    if not drained:
                        drained = True
                        driver.drain.set()
                    elif not driver.drain.is_set():
                        break
            time.sleep(1.0)
        wall1 = time.time()
        cpu1 = probe.cpu_all()
        timed_out = wall1 >= deadline
        driver.stop()

        tokens = {
            "prompt": int(metric(procs["extraction"].base_url, "podbrief_extraction_llm_tokens_total", direction="in")),
            "completion": int(
                metric(procs["extraction"].base_url, "podbrief_extraction_llm_tokens_total", direction="out")
            ),
        }
        transcribed_audio_s = metric(procs["transcription"].base_url, "podbrief_transcription_audio_seconds_total")
        chunks = metric(procs["extraction"].base_url, "podbrief_extraction_chunks_total")
        episodes_out = []
        for ep in episodes:
            eid = ids[ep.index]
            row: dict[str, Any] = {
                "episode": ep.guid,
                "show": ep.show,
                "audio_s": ep.duration_s,
                "clip": Path(ep.clip).name,
            }
            for stage in STAGES:
                t = observer.at[stage].get(eid)
                row[f"{stage}_s"] = None if t is None else round(t - released[eid], 1)
            seen = driver.first_seen.get(eid)
            row["in_brief_s"] = None if seen is None else round(seen - released[eid], 1)
            row["insights"] = observer.insights.get(eid)
            episodes_out.append(row)
        return {
            "unique": unique,
            "namespace": namespace,
            "logs": str(logs.relative_to(REPO)),
            "startup_s": startup_s,
            "startup_cpu_s": {n: round(v, 1) for n, v in startup_cpu.items()},
            "idle_cpu_s_per_s": idle_rate,
            "cpu_s": {n: round(cpu1[n] - cpu0[n], 2) for n in SERVICES},
            "wall_s": round(wall1 - wall0, 1),
            "first_release": wall0,
            "done_at": {eid: observer.done_at(eid) for eid in ids.values()},
            "released": released,
            "peaks": {n: vars(p) for n, p in probe.peaks.items()},
            "probe_samples": probe.samples,
            "tokens": tokens,
            "chunks": chunks,
            "transcribed_audio_s": transcribed_audio_s,
            "episodes": episodes_out,
            "delivery_runs": list(driver.runs),
            "emails": len(smtp.messages),
            "timed_out": timed_out,
            "failure": failure,
            "dead_lettered": dead_letters(procs),
        }
    finally:
        if driver is not None and driver.is_alive():
            driver.stop()
        if observer is not None:
            observer.stop()
        if probe is not None:
            probe.stop()
        for p in procs.values():
            p.stop()
        server.stop()
        smtp.stop()
        drop_database(infra.pg_url, db_name)
        delete_topics(infra.kafka, namespace)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


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


def run_peer(files: list[Path]) -> dict[str, Any] | None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.e2e_peer", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if out.returncode != 0:
        log(f"the faster-whisper peer failed:\n{out.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- report --------------------------------------------------------------------------------------------------


def summarise(cfg: Config, episodes: list[Episode], r: dict[str, Any], peer: dict[str, Any] | None) -> dict[str, Any]:
    audio_min = sum(e.duration_s for e in episodes) / 60.0
    done = [t for t in r["done_at"].values() if t is not None]
    span_s = (max(done) - r["first_release"]) if done else None
    latencies = [row["in_brief_s"] for row in r["episodes"] if row["in_brief_s"] is not None]
    with_insights = [row for row in r["episodes"] if (row["insights"] or 0) > 0]
    cpu_per_min = {n: round(r["cpu_s"][n] / audio_min, 3) for n in SERVICES}
    extra: dict[str, Any] = {
        "episodes": len(episodes),
        "episodes_finished": len(done),
        "audio_minutes": round(audio_min, 2),
        "episodes_per_hour": round(len(done) / (span_s / 3600.0), 2) if span_s else None,
        "busy_span_s": round(span_s, 1) if span_s else None,
        "last_release_s": round(max(r["released"].values()) - r["first_release"], 1),
        "latency_s": {
            "p50": pct(latencies, 50),
            "p95": pct(latencies, 95),
            "max": round(max(latencies), 1) if latencies else None,
            "episodes_measured": len(latencies),
            "episodes_with_insights": len(with_insights),
        },
        "stage_latency_p50_s": {
            stage: pct([row[f"{stage}_s"] for row in r["episodes"] if row[f"{stage}_s"] is not None], 50)
            for stage in STAGES
        },
        "cpu_s_per_audio_min": cpu_per_min,
        "cpu_s_per_audio_min_total": round(sum(cpu_per_min.values()), 3),
        "cpu_s": r["cpu_s"],
        "idle_cpu_s_per_s": r["idle_cpu_s_per_s"],
        "startup_s": r["startup_s"],
        "startup_cpu_s": r["startup_cpu_s"],
        "peak_rss_mb": {n: round(r["peaks"][n]["total_mb"], 1) for n in SERVICES},
        "peak_rss_mb_split": {
            n: {"process": round(r["peaks"][n]["main_mb"], 1), "children": round(r["peaks"][n]["children_mb"], 1)}
            for n in SERVICES
        },
        "insights": sum(row["insights"] or 0 for row in r["episodes"]),
        "llm_tokens": r["tokens"],
        "llm_chunks": int(r["chunks"]),
        "transcribed_audio_minutes": round(r["transcribed_audio_s"] / 60.0, 2),
        "release_interval_s": cfg.interval_s,
        "delivery_runs": len(r["delivery_runs"]),
        "emails": r["emails"],
        "wall_s": r["wall_s"],
        "timed_out": r["timed_out"],
        "failure": r["failure"],
        "dead_lettered": r["dead_lettered"],
        "peer": peer,
    }
    return extra


def write_section(cfg: Config, episodes: list[Episode], r: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    peer = extra["peer"]
    cpu = extra["cpu_s_per_audio_min"]
    comparisons = []
    if peer and peer.get("audio_s"):
        peer_per_min = round(peer["cpu_s"] / (peer["audio_s"] / 60.0), 3)
        note = (
            f"faster-whisper alone on {peer['files']} of the same episode files "
            f"({peer['audio_s'] / 60:.1f} audio min), same model and settings, model load excluded, "
            "run after the pipeline"
        )
        comparisons.append(
            report.Comparison(
                "transcription",
                "CPU s per audio minute (pipeline stage)",
                "CPU s/audio min",
                cpu["transcription"],
                "plain faster-whisper",
                peer_per_min,
                "lower",
                note,
            )
        )
    stages = [
        {
            "service": n,
            "CPU s": r["cpu_s"][n],
            "CPU s/audio min": cpu[n],
            "idle CPU s/s": r["idle_cpu_s_per_s"][n],
            "startup s": r["startup_s"][n],
            "startup CPU s": r["startup_cpu_s"][n],
            "peak RSS MB": extra["peak_rss_mb"][n],
            "of which children MB": extra["peak_rss_mb_split"][n]["children"],
        }
        for n in SERVICES
    ]
    lat = extra["latency_s"]
    summary = [
        {
            "episodes": f"{extra['episodes_finished']}/{extra['episodes']}",
            "audio min": extra["audio_minutes"],
            "episodes/hour": extra["episodes_per_hour"],
            "feed update to brief p50 s": lat["p50"],
            "p95 s": lat["p95"],
            "measured on": f"{lat['episodes_measured']} of {lat['episodes_with_insights']} with insights",
            "insights": extra["insights"],
            "LLM tokens in/out": f"{extra['llm_tokens']['prompt']}/{extra['llm_tokens']['completion']}",
            "wall s": extra["wall_s"],
        }
    ]
    notes = (
        f"{extra['episodes']} episodes ({extra['audio_minutes']:.1f} audio min: two espeak-ng voices per show speaking "
        "bench/e2e_scripts.py, plus one real recording from ../shared/data/audio each, Ogg/Opus) released into "
        f"{len({e.show_slug for e in episodes})} loopback RSS feeds one every {cfg.interval_s:g} s (a new feed is "
        "registered through ingest's API, later items trigger `POST /v1/feeds/{id}/poll`); the five services run as "
        "OS processes with their CPU defaults (tiny.en int8; SmolLM2-135M on the embedded llama-server, 1 thread; "
        "MiniLM ONNX; Qdrant local) on real Kafka (own namespace) and PostgreSQL (own database). "
        "Episodes/hour = finished episodes / (first release to the last episode's last insight clustered: "
        f"{extra['busy_span_s']} s, the last release being at {extra['last_release_s']} s; when the first is much "
        "longer, the pipeline, not the release schedule, set the pace, so this is the saturated throughput on this "
        "machine). Latency: "
        "feed update to the first composed brief carrying one of the episode's insights; a brief is composed "
        "(`POST /v1/admin/deliveries/run`, force, a new brief date each run so earlier picks are excluded, 3 readers) "
        "whenever delivery's consumed count grows, so the queueing in the pipeline is counted but not a daily "
        "schedule. CPU: each service's process tree (extraction's llama-server included) from the first release to "
        "the end, model loading excluded (startup shown apart); this includes idle polling and the benchmark's own "
        "requests (brief reads, and delivery's metrics only while clustered insights wait for a brief). "
        "Peak RSS sampled every 0.5 s over the whole run, children "
        "included. Only transcription has a peer (plain faster-whisper, same files and settings); there is no "
        "like-for-like peer for extraction, clustering, delivery or the pipeline as a whole, so those are reported "
        "without one. The machine is shared with other work: wall-clock figures are noisy, CPU seconds less so. "
        f"Logs: {r['logs']}."
    )
    if extra["failure"]:
        notes += f" FAILED: {extra['failure']}."
    if extra["timed_out"]:
        notes += f" TIMED OUT after {cfg.timeout_s:g} s: {extra['episodes_finished']} of {extra['episodes']} finished."
    return report.update_section(
        KEY,
        title=TITLE,
        command=cfg.command,
        comparisons=comparisons,
        details={"run": summary, "per service": stages, "per episode (seconds after the feed update)": r["episodes"]},
        notes=notes,
        extra=extra,
        headline=[
            (
                f"end to end, {extra['episodes']} episodes ({extra['audio_minutes']:.0f} audio min) through the five "
                "services on real Kafka + PostgreSQL",
                f"{extra['episodes_per_hour']} episodes/hour; feed update → insight in a composed brief "
                f"p50 {lat['p50']} s, p95 {lat['p95']} s",
            ),
            (
                "CPU s per audio minute (" + " / ".join(SERVICES) + ")",
                " / ".join(str(cpu[n]) for n in SERVICES) + " (extraction includes its llama-server)",
            ),
        ],
        order=ORDER,
        out_dir=cfg.out_dir,
    )


def print_tables(extra: dict[str, Any], r: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title="podbrief end to end (CPU)")
    for col in ("service", "CPU s", "CPU s/audio min", "idle CPU s/s", "startup s", "peak RSS MB"):
        t.add_column(col, justify="right" if col != "service" else "left")
    for n in SERVICES:
        t.add_row(
            n,
            f"{r['cpu_s'][n]:.1f}",
            f"{extra['cpu_s_per_audio_min'][n]:.3f}",
            f"{r['idle_cpu_s_per_s'][n]:.3f}",
            f"{r['startup_s'][n]:.1f}",
            f"{extra['peak_rss_mb'][n]:.0f}",
        )
    console.print(t)
    e = Table(title="per episode: seconds after the feed update")
    cols = ["episode", "audio_s", *(f"{s}_s" for s in STAGES), "in_brief_s", "insights"]
    for col in cols:
        e.add_column(col)
    for row in r["episodes"]:
        e.add_row(*("–" if row[c] is None else str(row[c]) for c in cols))
    console.print(e)
    lat = extra["latency_s"]
    console.print(
        f"episodes {extra['episodes_finished']}/{extra['episodes']}, {extra['audio_minutes']} audio min, "
        f"{extra['episodes_per_hour']} episodes/h; feed update -> brief p50 {lat['p50']} s, p95 {lat['p95']} s "
        f"({lat['episodes_measured']} episodes); insights {extra['insights']}; LLM tokens {extra['llm_tokens']}; "
        f"peer {extra['peer']}"
    )


def parse(argv: list[str] | None) -> Config:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=None, help="episodes (10; smoke 2)")
    ap.add_argument("--minutes", type=float, default=None, help="minutes of audio per episode (5; smoke 0.33)")
    ap.add_argument("--shows", type=int, default=None, help="feeds, up to 3 (3; smoke 1: episode 2 by a poll)")
    ap.add_argument("--interval", type=float, default=None, help="seconds between releases (30; smoke 5)")
    ap.add_argument("--idle", type=float, default=None, help="seconds of idle measurement (10; smoke 3)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds from the first release to give up")
    ap.add_argument("--peer-episodes", type=int, default=None, help="episodes for the faster-whisper peer (1; smoke 2)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, same code path")
    ap.add_argument("--out-dir", type=Path, default=report.DEFAULT_DIR)
    a = ap.parse_args(argv)
    s = a.smoke
    episodes = a.episodes if a.episodes is not None else (2 if s else 10)
    minutes = a.minutes if a.minutes is not None else (20 / 60 if s else 5.0)
    return Config(
        episodes=episodes,
        minutes=minutes,
        shows=a.shows if a.shows is not None else (1 if s else 3),
        interval_s=a.interval if a.interval is not None else (5.0 if s else 30.0),
        idle_s=a.idle if a.idle is not None else (3.0 if s else 10.0),
        timeout_s=a.timeout if a.timeout is not None else 600.0 + 60.0 * episodes * minutes,
        peer_episodes=a.peer_episodes if a.peer_episodes is not None else (2 if s else 1),
        smoke=s,
        out_dir=a.out_dir,
        command="python -m bench.e2e " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    # SIGTERM (bench/run.py passing on a Ctrl-C, a CI timeout) unwinds like an exception, so the finally blocks
    # stop the services, drop the database and delete the run's topics.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    episodes = build(cfg.episodes, cfg.minutes, cfg.shows)
    log(
        f"{len(episodes)} episodes, {sum(e.duration_s for e in episodes) / 60:.1f} audio min ready in "
        f"{time.monotonic() - t0:.1f} s"
    )
    with infrastructure() as infra:
        r = run_pipeline(cfg, episodes, infra)
    peer = None
    if cfg.peer_episodes > 0:
        files = [e.path for e in episodes[: cfg.peer_episodes]]
        log(f"peer: plain faster-whisper on {len(files)} episode file(s)")
        peer = run_peer(files)
        if peer is not None:
            peer["files"] = len(files)
    extra = summarise(cfg, episodes, r, peer)
    write_section(cfg, episodes, r, extra)
    print_tables(extra, r)
    log(f"wrote section {KEY!r} to {cfg.out_dir / 'results.json'} and RESULTS.md ({time.monotonic() - t0:.0f} s)")
    if extra["timed_out"] or extra["failure"] or extra["episodes_finished"] < extra["episodes"]:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
