"""The service end to end on the in-memory bus: EpisodeDiscovered in, EpisodeTranscribed out, transcript
served over HTTP; a broken enclosure lands in the DLQ and the service keeps running."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from podbrief.bus import Bus, MemoryTransport, Record
from podbrief.events.codec import decode
from podbrief.events.models import EpisodeDiscovered, EpisodeTranscribed
from podbrief.events.topics import EPISODE_DISCOVERED, EPISODE_TRANSCRIBED, dlq_topic
from podbrief.settings import BusSettings, DatabaseSettings, HttpSettings, NetSettings
from podbrief.transcripts import parse_publisher_transcript
from podbrief_testing import LoopbackServer
from podbrief_testing.transcription import check_transcript, real_settings
from podbrief_transcription.app import create_app
from pydantic import SecretStr

pytestmark = pytest.mark.slow


def wait_for(transport: MemoryTransport, topic: str, count: int = 1, timeout_s: float = 120.0) -> list[Record]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = transport.records(topic)
        if len(records) >= count:
            return records
        time.sleep(0.1)
    raise AssertionError(f"no {count} record(s) on {topic} within {timeout_s}s")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[TestClient, MemoryTransport, Bus]]:
    settings = real_settings(
        db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/transcription.db")),
        bus=BusSettings(kind="memory", max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.05),
        net=NetSettings(allowed_networks=("127.0.0.0/8",)),
        http=HttpSettings(admin_api_key=SecretStr("test-key")),
        tmp_dir=tmp_path / "tmp",
    )
    transport = MemoryTransport(partitions=2)
    asyncio.run(transport.start())
    bus = Bus(transport, settings.bus)
    app = create_app(settings, transport=transport)
    with TestClient(app) as client:
        yield client, transport, bus


def test_episode_through_the_service(
    service: tuple[TestClient, MemoryTransport, Bus],
    loopback: LoopbackServer,
    audio_dir: Path,
    discovered: Callable[..., EpisodeDiscovered],
) -> None:
    client, transport, bus = service
    assert client.get("/readyz").status_code == 200
    url = loopback.add("/episodes/jfk.flac", (audio_dir / "jfk.flac").read_bytes(), "audio/flac")
    event = discovered(url)
    client.portal.call(bus.publish, event)  # type: ignore[union-attr]

    out = decode(wait_for(transport, EPISODE_TRANSCRIBED)[0].value, EpisodeTranscribed)
    episode_id = event.payload.episode.episode_id
    assert out.key == str(episode_id) and out.payload.episode == event.payload.episode
    transcript = out.payload.transcript.unpack()
    check_transcript(transcript.text)
    assert out.payload.source == "whisper" and out.payload.language == "en"

    as_json = client.get(f"/v1/episodes/{episode_id}/transcript")
    assert as_json.status_code == 200 and as_json.json()["text"] == transcript.text  # the stored one, served
    check_transcript(" ".join(w["text"] for s in as_json.json()["segments"] for w in s["words"]))
    vtt = client.get(f"/v1/episodes/{episode_id}/transcript", params={"format": "vtt"})
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    srt = client.get(f"/v1/episodes/{episode_id}/transcript", params={"format": "srt"})
    assert srt.headers["content-type"].startswith("application/x-subrip")
    for body, mime in ((vtt.text, "text/vtt"), (srt.text, "application/x-subrip")):
        parsed = parse_publisher_transcript(body.encode(), mime)
        check_transcript(parsed.text)

    status = client.get(f"/v1/episodes/{episode_id}").json()
    assert status["status"] == "transcribed" and status["source"] == "whisper" and status["duration_s"] > 10
    missing = client.get(f"/v1/episodes/{event.event_id}/transcript")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert client.get(f"/v1/episodes/{episode_id}/transcript", params={"format": "txt"}).status_code == 422

    # Redelivery of the same episode: re-published from the store, the enclosure is not fetched again.
    hits = loopback.hits["/episodes/jfk.flac"]
    client.portal.call(bus.publish, event)  # type: ignore[union-attr]
    again = wait_for(transport, EPISODE_TRANSCRIBED, count=2)
    assert decode(again[1].value, EpisodeTranscribed).event_id == out.event_id
    assert loopback.hits["/episodes/jfk.flac"] == hits

    metrics = client.get("/metrics/").text
    assert "podbrief_transcription_audio_seconds_total 11.0" in metrics
    assert 'podbrief_transcription_transcripts_total{source="whisper"} 1.0' in metrics
    assert "podbrief_transcription_real_time_factor_count 1.0" in metrics
    assert "podbrief_transcription_model_load_seconds" in metrics


def test_broken_enclosures_go_to_the_dlq(
    service: tuple[TestClient, MemoryTransport, Bus],
    loopback: LoopbackServer,
    discovered: Callable[..., EpisodeDiscovered],
) -> None:
    client, transport, bus = service
    empty = discovered(loopback.add("/empty.mp3", b"", "audio/mpeg"))
    html = discovered(loopback.add("/page.mp3", b"<html>gone</html>", "text/html"))
    for event in (empty, html):
        client.portal.call(bus.publish, event)  # type: ignore[union-attr]
    dead = wait_for(transport, dlq_topic(EPISODE_DISCOVERED), count=2)
    reasons = {r.header("event_id"): r.header("x-error-reason") for r in dead}
    assert reasons == {str(empty.event_id): "empty_file", str(html.event_id): "bad_content_type"}
    assert all(r.header("x-error-class") == "permanent" for r in dead)
    assert transport.records(EPISODE_TRANSCRIBED) == []
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    metrics = client.get("/metrics/").text
    assert 'podbrief_transcription_failures_total{reason="empty_file"} 1.0' in metrics
    # The episode status API gives the same reason code, and never the raw error.
    for event, reason in ((empty, "empty_file"), (html, "bad_content_type")):
        body = client.get(f"/v1/episodes/{event.payload.episode.episode_id}").json()
        assert body["status"] == "failing" and body["error_reason"] == reason and body["attempts"] == 1, body
        assert "message" not in body and "html" not in str(body)
    assert client.get(f"/v1/episodes/{uuid.uuid4()}").status_code == 404
