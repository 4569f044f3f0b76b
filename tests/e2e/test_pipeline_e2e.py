"""The whole pipeline as five OS processes on a real Kafka broker and PostgreSQL: a real podcast feed served from
loopback (its enclosures rewritten to real speech), Whisper, the LLM, Qdrant, ranking, and an email received by a
real SMTP server, carrying an insight drawn from that speech with its quote and timestamp, and the one correlation
id its episode carried from the feed."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from podbrief.events import BriefDelivered, decode
from podbrief.events.ids import episode_id
from podbrief.events.topics import (
    BRIEF_DELIVERED,
    EPISODE_DISCOVERED,
    EPISODE_TRANSCRIBED,
    INSIGHT_CLUSTERED,
    INSIGHTS_EXTRACTED,
)
from podbrief.status import ServiceStatus
from podbrief_cli.status import remote_status
from podbrief_testing import LoopbackServer, SmtpSink, topic_records
from podbrief_testing.feeds import feed_with_local_audio

from .conftest import Pipeline, namespace, promharness, sign_up_and_confirm, wait_for_delivery_pool, wait_for_extraction

pytestmark = pytest.mark.e2e

JFK_WORDS = {"country", "americans", "ask"}
# Metrics that cannot have samples in this run: no GPU, no vLLM, and (by design) no failures.
NO_DATA_HERE = (
    "gpu_memory",
    "vllm:",
    "dead_lettered",
    "failed",
    "failures",
    "bounce",
    "invalid_output",
    "circuit",
    "retries",
    "dropped",
)


def test_a_real_episode_becomes_an_insight_in_a_subscribers_email(
    pipeline: Pipeline,
    loopback: LoopbackServer,
    smtp_sink: SmtpSink,
    shared_dir: Path,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    procs, admin_key, prom = pipeline
    admin = {"X-API-Key": admin_key}
    feed_url, guids = feed_with_local_audio(shared_dir, loopback)
    episodes = [episode_id(feed_url, g) for g in guids]

    # A subscriber whose interests match the speech signs up and confirms through the emailed link.
    delivery = procs["delivery"].base_url
    _, token = sign_up_and_confirm(
        delivery,
        smtp_sink,
        "reader@example.org",
        "patriotism, citizenship, public service and what Americans can do for their country",
    )
    # The probe's replay (#21): the link works once, a second confirmation issues no key or profile token.
    again = httpx.post(delivery + "/v1/subscribers/confirm", json={"token": token}, timeout=30)
    assert again.status_code == 400 and "api_key" not in again.json(), again.text

    # The feed goes in through ingest's API; everything after that happens over Kafka.
    r = httpx.post(procs["ingest"].base_url + "/v1/feeds", json={"url": feed_url}, headers=admin, timeout=60)
    assert r.status_code == 201, r.text

    wait_for_extraction(procs, len(episodes))
    extraction = procs["extraction"].base_url
    statuses = [httpx.get(f"{extraction}/v1/episodes/{e}", timeout=10).json() for e in episodes]
    insights = [httpx.get(f"{extraction}/v1/episodes/{e}/insights", timeout=10).json() for e in episodes]
    counts = [len(i if isinstance(i, list) else i.get("insights", [])) for i in insights]
    assert counts[0] >= 1, f"no insight kept from the JFK speech: {statuses[0]} {insights[0]}"
    wait_for_delivery_pool(procs, sum(counts))

    r = httpx.post(delivery + "/v1/admin/deliveries/run", json={"force": True}, headers=admin, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["sent"] == 1, r.json()
    messages = smtp_sink.wait_for(2, timeout_s=30)
    brief = messages[-1]
    assert brief["To"] == "reader@example.org"
    assert brief["List-Unsubscribe"] and "One-Click" in brief["List-Unsubscribe-Post"]
    text = brief.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = brief.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    Path("test-artifacts/e2e/brief.html").write_text(html)
    Path("test-artifacts/e2e/brief.txt").write_text(text)
    lowered = text.lower()
    assert any(w in lowered for w in JFK_WORDS), text
    # The quote is verbatim speech from the clip, and the pick links into the audio at its second.
    jfk = [i for i in (insights[0] if isinstance(insights[0], list) else insights[0]["insights"])]
    assert any(i["quote"].lower()[:30] in lowered for i in jfk), text
    assert re.search(r"#t=\d+", html), "no timestamp link in the brief"
    assert re.search(r"\b0:\d\d\b|\b00:\d\d\b", text), "no timestamp shown in the brief"
    assert uuid.UUID(str(episodes[0]))

    # One correlation id from feed to email: every event about an episode, at every stage, carries the id ingest
    # gave it (the episode's own); the brief's BriefDelivered event and its email carry its top pick's.
    ns = namespace(unique)
    for topic in (EPISODE_DISCOVERED, EPISODE_TRANSCRIBED, INSIGHTS_EXTRACTED, INSIGHT_CLUSTERED):
        events = [decode(r.value) for r in topic_records(kafka_bootstrap, ns + topic)]
        assert events, f"nothing on {topic}"
        for event in events:
            assert event.correlation_id == event.payload.episode.episode_id, (topic, event.event_id)  # type: ignore[attr-defined]
    [delivered] = [decode(r.value) for r in topic_records(kafka_bootstrap, ns + BRIEF_DELIVERED)]
    assert isinstance(delivered, BriefDelivered) and str(delivered.payload.brief_id) == brief["X-Podbrief-Brief-Id"]
    assert str(delivered.correlation_id) == brief["X-Podbrief-Correlation-Id"]
    assert delivered.correlation_id in episodes, (delivered.correlation_id, episodes)

    # The reader likes the pick: the thumbs-up link in the email works and is counted.
    thumbs_up = re.search(r'href="([^"]*/feedback\?t=[^"]+)"', html)
    assert thumbs_up, "no feedback link in the brief"
    r = httpx.get(thumbs_up.group(1).replace("&amp;", "&"), timeout=30)
    assert r.status_code == 200, r.text

    # Each pick links to its public page, which resolves and shows the quote, its topic's page and the related
    # insights' pages resolve too, and the public search (through clustering's HTTP API) finds the pick.
    pages = sorted(set(re.findall(r'href="(http://127\.0\.0\.1:\d+/insights/[0-9a-f-]+)(?:\?t=[^"]+)?"', html)))
    assert pages, "no insight page link in the brief"
    for url in pages:
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200, (url, page.text)
        assert 'property="og:title"' in page.text and f'<link rel="canonical" href="{url}">' in page.text
        topic = re.search(r'id="topic" href="([^"]+)"', page.text)
        assert topic and httpx.get(topic.group(1), timeout=30).status_code == 200
        for related in re.findall(r'<a class="insight-link" href="([^"]+)"', page.text):
            assert httpx.get(related, timeout=30).status_code == 200, related
    assert pages[0].rsplit("/", 1)[1] in httpx.get(delivery + "/sitemap.xml", timeout=30).text
    found_pages = httpx.get(delivery + "/search", params={"q": "what you can do for your country"}, timeout=30)
    assert found_pages.status_code == 200 and "/insights/" in found_pages.text, found_pages.text

    # The operator's view of the run (`podbrief status --url ...`): every episode at every stage, no failure, no
    # dead letter, no lag, read from the five services' GET /v1/status (PostgreSQL counts, Kafka group offsets).
    found = asyncio.run(remote_status({name: p.base_url for name, p in procs.items()}, admin_key))
    by = {s.service: s for s in found if isinstance(s, ServiceStatus)}
    assert set(by) == set(procs), found
    assert by["ingest"].stage.episodes["discovered"] == len(episodes)
    assert by["transcription"].stage.episodes["transcribed"] == len(episodes)
    assert by["extraction"].stage.episodes.get("extracted", 0) + by["extraction"].stage.episodes.get(
        "skipped", 0
    ) == len(episodes)
    assert by["delivery"].stage.episodes["in a brief"] >= 1
    for s in by.values():
        assert s.stage.failures == {} and all(not reasons for reasons in s.dead_letters.values()), s
        assert s.consumer is None or all(lag == 0 for lag in s.consumer.lag.values()), s

    # Every dashboard panel shows data after this run, except those whose metrics only exist where this machine
    # has nothing to measure.
    time.sleep(3)  # one more scrape after the send
    empty = []
    for where, expr in promharness.dashboard_queries():
        answer = promharness.query(prom, expr)
        assert answer["status"] == "success", (where, expr, answer)
        if not answer["data"]["result"] and not any(marker in expr for marker in NO_DATA_HERE):
            empty.append(f"{where}: {expr}")
    assert not empty, "dashboard panels without data after the run:\n" + "\n".join(empty)
