"""Fault injection on the whole pipeline: the five services as processes on a private Kafka broker and
PostgreSQL, a known workload (three real speech episodes from a loopback feed, a confirmed subscriber), one fault
per scenario, then exactly the baseline's transcripts and insights, no duplicate effects, nothing lost, and
exactly one brief per subscriber per day. Each scenario adds a row to test-artifacts/faults/results.{md,json}."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from podbrief.events.ids import episode_id
from podbrief.events.topics import INSIGHT_CLUSTERED
from podbrief_testing import SmtpSink

sys.path.insert(0, str(Path(__file__).parent))
import faultkit
from faultkit import Infra, Pipeline, Row

pytestmark = pytest.mark.faults

FINISHED = ("done", "skipped")
READER = ("reader@example.org", "patriotism, citizenship, public service and what Americans can do for their country")
SETTLE_S = 240.0


@dataclass
class Expected:
    episodes: list[str]
    insights: dict[str, set[str]]
    keys: dict[str, list[str]]

    @property
    def all_insights(self) -> set[str]:
        return set().union(*self.insights.values()) if self.insights else set()

    @property
    def messages(self) -> int:
        # discovered + transcribed + extracted, one per episode, and one clustered per insight
        return 3 * len(self.episodes) + len(self.all_insights)


def episodes_of(infra: Infra) -> list[str]:
    return [str(episode_id(infra.feed_url, g)) for g in infra.episode_guids]


def caught_up(p: Pipeline, episodes: list[str], insights: set[str] | None) -> bool:
    s = p.state()
    if s is None:
        return False
    if not set(episodes) <= s.transcripts or any(s.extracted.get(e) not in FINISHED for e in episodes):
        return False
    kept = {i for e in episodes for i in s.insights.get(e, set())}
    if insights is not None and kept != insights:
        return False
    return kept <= s.clustered and kept <= s.delivery_insights


def effects(state: faultkit.State, episodes: list[str]) -> int:
    """Messages whose effect is in the consumer's tables: a transcript per discovered episode, a finished
    extraction per transcript, a fully clustered episode per extraction event, a candidate per clustered insight."""
    kept = {i for e in episodes for i in state.insights.get(e, set())}
    return (
        len(set(episodes) & state.transcripts)
        + sum(1 for e in episodes if state.extracted.get(e) in FINISHED)
        + sum(
            1
            for e in episodes
            if state.extracted.get(e) in FINISHED and state.insights.get(e, set()) <= state.clustered
        )
        + len(kept & state.delivery_insights)
    )


def qdrant_points(p: Pipeline) -> int:
    """Points in clustering's embedded store (Qdrant Edge), read once the services have stopped."""
    import qdrant_edge

    shard = qdrant_edge.EdgeShard.load(str(p.workdir / "qdrant" / "insights" / "shard"))
    try:
        return int(shard.count(qdrant_edge.CountRequest(exact=True)))
    finally:
        shard.close()


def finish(
    p: Pipeline,
    expected: Expected | None,
    *,
    t_fault: float | None,
    readers: list[str],
    results: list[Row],
    note: str = "",
    poison: int = 0,
    briefs_expected: dict[str, int] | None = None,
    recovery_s: float | None = None,
) -> tuple[Row, faultkit.State, faultkit.WireStats]:
    """Wait for the pipeline to catch up, run the daily delivery twice, count everything, stop the services and
    add the scenario's row. The caller asserts on what it returns (and this asserts the invariants)."""
    episodes = expected.episodes if expected else episodes_of(p.infra)
    want = expected.all_insights if expected else None
    try:
        t_done = p.wait(lambda: caught_up(p, episodes, want), "the pipeline to catch up", SETTLE_S)
    except AssertionError:
        # The table shows the failure too, with what the services hold at the deadline.
        now = p.state()
        got = 0 if now is None else effects(now, episodes)
        total = expected.messages if expected else 3 * len(episodes)
        failed = Row(p.scenario, total, got, 0, 0, total - got, 0, "-", None, "FAILED: never caught up")
        failed.restarts = dict(p.crashes)
        results.append(failed)
        raise
    recovery = recovery_s if recovery_s is not None else None if t_fault is None else round(t_done - t_fault, 1)

    first = p.run_deliveries()
    second = p.run_deliveries()
    state = p.state()
    assert state is not None
    wire = faultkit.wire_stats(p.infra.kafka.bootstrap, p.namespace)
    briefs = {r: p.briefs_to(r) for r in readers}
    p.stop()
    points = qdrant_points(p)

    kept = {i for e in episodes for i in state.insights.get(e, set())}
    n = len(episodes)
    out = effects(state, episodes)
    messages_in = expected.messages if expected else 3 * n + len(kept)
    want_briefs = briefs_expected or dict.fromkeys(readers, 1)
    effect_dups = max(0, points - len(kept)) + sum(max(0, briefs[r] - want_briefs[r]) for r in readers)
    dead = sum(len(v) for v in wire.dlq.values())
    row = Row(
        scenario=p.scenario,
        messages_in=messages_in,
        messages_out=out,
        wire_duplicates=wire.duplicates,
        effect_duplicates=effect_dups,
        lost=messages_in - out,
        dead_lettered=dead,
        briefs=f"{sum(briefs.values())}/{sum(want_briefs.values())}",
        recovery_s=recovery,
        note=note,
    )
    row.restarts = dict(p.crashes)
    results.append(row)
    print(f"\n[{p.scenario}] {row}  runs: {first} / {second}")  # noqa: T201

    assert row.lost == 0, (row, state)
    assert row.effect_duplicates == 0, (row, points, briefs)
    assert points == len(kept), (points, kept)
    assert dead == poison, wire.dlq
    assert briefs == want_briefs, briefs
    # The second run of the same day sends nothing more.
    assert second.get("sent", 0) == 0, second
    for t in faultkit.PIPELINE_TOPICS:
        assert wire.distinct[t] == (len(kept) if t == INSIGHT_CLUSTERED else n), (t, wire.records, wire.distinct)
    return row, state, wire


def new_smtp() -> SmtpSink:
    return SmtpSink().start()


@pytest.fixture(scope="session")
def baseline(infra: Infra, results: list[Row], tmp_path_factory: pytest.TempPathFactory) -> Expected:
    """The fault-free run of the workload: its insights are what every faulty run must reproduce (the model runs
    at temperature 0 with a fixed seed, one request at a time)."""
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path_factory.mktemp("baseline"), smtp, "baseline") as p:
            p.subscribe(*READER)
            t0 = time.monotonic()
            p.add_feed()
            _, state, wire = finish(
                p,
                None,
                t_fault=t0,
                readers=[READER[0]],
                results=results,
                note="no fault; recovery column = time to drain the workload",
            )
    finally:
        smtp.stop()
    episodes = episodes_of(infra)
    insights = {e: state.insights.get(e, set()) for e in episodes}
    assert sum(len(v) for v in insights.values()) >= 1, "the baseline kept no insight at all"
    return Expected(episodes, insights, wire.keys)


def test_fault_free_baseline(baseline: Expected) -> None:
    assert len(baseline.episodes) == 3
    assert all(baseline.keys[t] for t in faultkit.PIPELINE_TOPICS), baseline.keys


# ---------------------------------------------------------------- SIGKILL each service mid-batch, then restart


# For each service: the query that shows it has work in flight (a count in its own tables), and when to kill.
def _kill_points(expected: Expected) -> dict[str, tuple[str, object]]:
    n, k = len(expected.episodes), len(expected.all_insights)
    return {
        # Mid-publish of the outbox: rows written, not all of them sent yet.
        "ingest": ("SELECT count(*) FILTER (WHERE sent_at IS NULL) FROM ingest_outbox", lambda v: v >= 1),
        "transcription": ("SELECT count(*) FROM transcription_transcripts", lambda v: 1 <= v < n),
        "extraction": (
            "SELECT count(*) FROM extraction_episodes WHERE status IN ('done', 'skipped')",
            lambda v: 1 <= v < n,
        ),
        "clustering": ("SELECT count(*) FROM clustering_members", lambda v: 1 <= v < max(k, 2)),
        "delivery": ("SELECT count(*) FROM delivery_insights", lambda v: 1 <= v < max(k, 2)),
    }


KILL_NOTES = {
    "ingest": "SIGKILL mid-publish: {seen} outbox rows unsent (broker stalled)",
    "transcription": "SIGKILL with {seen} of 3 transcripts stored, the rest in flight",
    "extraction": "SIGKILL with {seen} of 3 episodes extracted, the rest in flight",
    "clustering": "SIGKILL with {seen} insights clustered, the rest in flight",
    "delivery": "SIGKILL with {seen} insights stored as candidates, the rest in flight",
}


@pytest.mark.parametrize("service", faultkit.SERVICES)
def test_sigkill_service_mid_batch_then_restart(
    service: str, infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    sql, ready = _kill_points(baseline)[service]
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, f"sigkill-{service}") as p:
            p.subscribe(*READER)
            if service == "ingest":
                # The outbox is written and published within milliseconds; a stalled broker holds the publish
                # in flight long enough to kill ingest in the middle of it. The feed is added (and polled) by
                # the API call, which the kill cuts off.
                with infra.kafka.paused():
                    adding = threading.Thread(target=lambda: _ignore_errors(p.add_feed), daemon=True)
                    adding.start()
                    seen, t_kill = faultkit.kill_when(p, service, sql, ready, timeout_s=60)  # type: ignore[arg-type]
                adding.join(timeout=30)
            else:
                p.add_feed()
                seen, t_kill = faultkit.kill_when(p, service, sql, ready, timeout_s=SETTLE_S)  # type: ignore[arg-type]
            p.restart(service)
            finish(
                p,
                baseline,
                t_fault=t_kill,
                readers=[READER[0]],
                results=results,
                note=KILL_NOTES[service].format(seen=seen),
            )
    finally:
        smtp.stop()


def mid_run(p: Pipeline) -> float:
    """Wait until the workload is part-way through (one episode transcribed), the moment to break things."""
    return p.wait(lambda: (s := p.state()) is not None and len(s.transcripts) >= 1, "the first transcript", SETTLE_S)


# ---------------------------------------------------------------- Kafka and PostgreSQL go away mid-run


def test_kafka_broker_killed_and_restarted_mid_run(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, "kafka-kill-restart") as p:
            p.subscribe(*READER)
            p.add_feed()
            mid_run(p)
            t_fault = time.monotonic()
            p.supervise = True
            infra.kafka.kill()
            # The broker stays down for a while, as a crashed node does, before it comes back with its data.
            outage = 5.0
            time.sleep(outage)
            infra.kafka.start(keep_data=True)
            down_s = time.monotonic() - t_fault
            finish(
                p, baseline, t_fault=t_fault, readers=[READER[0]], results=results, note=f"broker down {down_s:.0f} s"
            )
    finally:
        smtp.stop()


def test_postgres_restarted_mid_run(infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path) -> None:
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, "postgres-restart") as p:
            p.subscribe(*READER)
            p.add_feed()
            mid_run(p)
            t_fault = time.monotonic()
            p.supervise = True
            infra.pg.restart()
            down_s = time.monotonic() - t_fault
            finish(
                p, baseline, t_fault=t_fault, readers=[READER[0]], results=results, note=f"restart took {down_s:.1f} s"
            )
    finally:
        smtp.stop()


def test_postgres_down_for_a_while_mid_run(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, "postgres-down-15s") as p:
            p.subscribe(*READER)
            p.add_feed()
            mid_run(p)
            p.supervise = True
            t_fault = time.monotonic()
            infra.pg.stop()
            # Longer than the bus's whole retry budget (4 attempts, 0.5-2 s backoff): an outage, not a blip.
            time.sleep(15.0)
            infra.pg.start(keep_data=True)
            down_s = time.monotonic() - t_fault
            finish(p, baseline, t_fault=t_fault, readers=[READER[0]], results=results, note=f"down {down_s:.0f} s")
    finally:
        smtp.stop()


# ---------------------------------------------------------------- the LLM endpoint misbehaves for a while


def test_llm_endpoint_errors_timeouts_and_invalid_json(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    # Invalid JSON is the endpoint's body (a truncated completion), not the model's answer: a bad answer gets a
    # repair request whose (different) prompt changes the insights, which is extraction quality, not recovery.
    faults = ["500", "500", "hang", "garbage", "500", "garbage"]
    smtp = new_smtp()
    try:
        # The client gives up on a hung request after 40 s (the proxy holds it 45 s); one request at a time on a
        # busy 2-core machine can legitimately take well over 15 s.
        infra.proxy.hang_s = 45.0
        overrides = {"extraction": {"LLM__TIMEOUT_S": "40"}}
        with faultkit.pipeline(infra, tmp_path, smtp, "llm-500-timeout-badjson", **overrides) as p:
            p.subscribe(*READER)
            before = infra.proxy.completions()
            infra.proxy.inject(faults)
            t_fault = time.monotonic()
            p.add_feed()
            p.wait(lambda: not infra.proxy.faults, "the LLM faults to be used up", SETTLE_S)
            t_end = time.monotonic()
            _, state, _ = finish(
                p,
                baseline,
                t_fault=t_end,
                readers=[READER[0]],
                results=results,
                note=f"faults {','.join(faults)} over {t_end - t_fault:.0f} s",
            )
        assert infra.proxy.completions() - before > len(baseline.episodes) + len(faults) - 1
        assert all(state.extracted[e] == "done" for e in baseline.episodes)
    finally:
        infra.proxy.inject([])
        smtp.stop()


# ---------------------------------------------------------------- SMTP refuses, temporarily then permanently


def test_smtp_refuses_temporarily_then_permanently(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    other = ("second@example.org", "novels, family, money and english country houses")
    bounced = ("bounced@example.org", "presidents and speeches")
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, "smtp-4xx-then-5xx") as p:
            p.subscribe(*READER)
            p.subscribe(*other)
            p.add_feed()
            p.wait(lambda: caught_up(p, baseline.episodes, baseline.all_insights), "the pipeline", SETTLE_S)

            # Temporary refusal: the run records a retry, nothing is sent, the next run sends exactly once.
            smtp.refuse = "451 4.3.0 mailbox busy, try again later"
            refused = p.run_deliveries()
            assert refused["sent"] == 0 and refused["retry"] == 2, refused
            again = p.run_deliveries()
            assert again["sent"] == 0 and again["retry"] == 2, again
            t_end = time.monotonic()
            smtp.refuse = None
            recovered = p.run_deliveries()
            recovery = time.monotonic() - t_end
            assert recovered["sent"] == 2, recovered
            ledger = {str(r["subscriber_id"]): r for r in p.state().ledger}  # type: ignore[union-attr]
            assert all(r["status"] == "sent" for r in ledger.values()), ledger

            # Permanent refusal of a new subscriber's address: failed once, the subscriber paused, never retried.
            bounced_id = p.subscribe(*bounced)
            smtp.refuse = "550 5.1.1 no such user"
            failed_before = faultkit.metric(p.url("delivery"), "podbrief_delivery_briefs_failed_total")
            hard = p.run_deliveries()
            failed_after = faultkit.metric(p.url("delivery"), "podbrief_delivery_briefs_failed_total")
            assert failed_after - failed_before == 1, (failed_before, failed_after)
            assert hard["failed"] == 1 and hard["sent"] == 0, hard
            smtp.refuse = None
            assert p.run_deliveries()["sent"] == 0
            ledger = {str(r["subscriber_id"]): r for r in p.state().ledger}  # type: ignore[union-attr]
            assert ledger[bounced_id]["status"] == "failed", ledger[bounced_id]
            finish(
                p,
                baseline,
                t_fault=None,
                readers=[READER[0], other[0], bounced[0]],
                results=results,
                briefs_expected={READER[0]: 1, other[0]: 1, bounced[0]: 0},
                recovery_s=round(recovery, 1),
                note="451 x2 runs -> 1 send each; 550 -> failed, paused, 0 sends",
            )
    finally:
        smtp.stop()


# ---------------------------------------------------------------- poison messages on every consumed topic


def test_poison_message_on_each_topic_goes_to_its_dlq_and_the_partition_keeps_flowing(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    smtp = new_smtp()
    try:
        with faultkit.pipeline(infra, tmp_path, smtp, "poison-each-topic") as p:
            p.subscribe(*READER)
            # The consumers have created their topics by now (ready means subscribed). Poison goes in ahead of
            # the workload, under keys the workload's own messages use, so they share its partition.
            sent = asyncio.run(produce_poison(infra.kafka.bootstrap, p.namespace, baseline))
            p.add_feed()
            _, _, wire = finish(
                p,
                baseline,
                t_fault=None,
                readers=[READER[0]],
                results=results,
                poison=2 * len(faultkit.CONSUMED),
                note="2 poison (undecodable, invalid event) per consumed topic; brief.delivered has no consumer",
            )
        for topic, (key, partitions) in sent.items():
            dlq = wire.dlq[topic]
            assert len(dlq) == 2, (topic, dlq)
            assert {d["x-error-class"] for d in dlq} == {"invalid_event"}, dlq
            assert {d["x-original-topic"] for d in dlq} == {topic}
            assert {int(d["x-original-partition"]) for d in dlq} == partitions
            assert all(d["x-attempts"] == "0" and d["x-consumer-group"] for d in dlq), dlq
            assert key in wire.keys[topic]
    finally:
        smtp.stop()


async def produce_poison(bootstrap: str, namespace: str, baseline: Expected) -> dict[str, tuple[str, set[int]]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    sent: dict[str, tuple[str, set[int]]] = {}
    try:
        for topic in faultkit.CONSUMED:
            key = baseline.keys[topic][0]
            undecodable = b"\xff\xfe not json at all \x00"
            invalid = json.dumps({"event_type": "bogus", "schema_version": 1, "key": key}).encode()
            parts = set()
            for value in (undecodable, invalid):
                md = await producer.send_and_wait(namespace + topic, value, key=key.encode())
                parts.add(md.partition)
            sent[topic] = (key, parts)
    finally:
        await producer.stop()
    return sent


# ---------------------------------------------------------------- delivery dies while the SMTP server has the brief


def test_delivery_killed_mid_send_sends_the_brief_exactly_once_after_restart(
    infra: Infra, baseline: Expected, results: list[Row], tmp_path: Path
) -> None:
    smtp = new_smtp()
    try:
        # A claim whose sender died is taken over after this lease (production: 15 minutes).
        overrides = {"delivery": {"CLAIM_LEASE_S": "5"}}
        with faultkit.pipeline(infra, tmp_path, smtp, "sigkill-delivery-mid-send", **overrides) as p:
            p.subscribe(*READER)
            p.add_feed()
            p.wait(lambda: caught_up(p, baseline.episodes, baseline.all_insights), "the pipeline", SETTLE_S)
            with faultkit.smtp_holding_data(smtp) as held:
                run = threading.Thread(target=lambda: _ignore_errors(p.run_deliveries), daemon=True)
                run.start()
                p.wait(held.is_set, "the brief to reach the SMTP DATA stage", 60)
                p.procs["delivery"].kill()
                t_kill = time.monotonic()
            run.join(timeout=30)
            assert p.briefs_to(READER[0]) == 0, "the SMTP server accepted a message from a dead client"
            p.restart("delivery")
            p.wait(lambda: p.run_deliveries()["sent"] == 1, "a run to send the dead sender's brief", 120)
            recovery = time.monotonic() - t_kill
            finish(
                p,
                baseline,
                t_fault=None,
                readers=[READER[0]],
                results=results,
                recovery_s=round(recovery, 1),
                note="killed during SMTP DATA; the stale claim is taken over after its lease",
            )
    finally:
        smtp.stop()


def _ignore_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except (httpx.HTTPError, AssertionError):
        pass  # the process answering it was killed: that is the fault under test
