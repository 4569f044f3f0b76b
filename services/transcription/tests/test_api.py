"""The transcript endpoint, against a fake repository (no model)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from podbrief.events.models import Segment, Transcript, Word
from podbrief.http import install_problem_handlers
from podbrief_transcription.api import router

pytestmark = pytest.mark.unit

KNOWN = uuid.uuid4()
TRANSCRIPT = Transcript(
    text="Hello there. General Kenobi.",
    language="en",
    duration_s=4.0,
    segments=(
        Segment(
            start_s=0.0,
            end_s=1.5,
            text="Hello there.",
            speaker="left",
            words=(Word(start_s=0.0, end_s=0.6, text="Hello"), Word(start_s=0.7, end_s=1.5, text="there.")),
        ),
        Segment(start_s=3661.25, end_s=3663.0, text="General Kenobi.", speaker="right"),
    ),
)


class FakeRepo:
    async def get(self, episode_id: uuid.UUID) -> Transcript | None:
        return TRANSCRIPT if episode_id == KNOWN else None


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    app.state.deps = SimpleNamespace(repo=FakeRepo())
    return TestClient(app)


def test_json(client: TestClient) -> None:
    r = client.get(f"/v1/episodes/{KNOWN}/transcript")
    assert r.status_code == 200 and r.json() == TRANSCRIPT.model_dump(mode="json")


def test_vtt_and_srt(client: TestClient) -> None:
    vtt = client.get(f"/v1/episodes/{KNOWN}/transcript?format=vtt")
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    assert "01:01:01.250 --> 01:01:03.000" in vtt.text and "<v right>General Kenobi." in vtt.text
    srt = client.get(f"/v1/episodes/{KNOWN}/transcript?format=srt")
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:01,500\nleft: Hello there.")


def test_unknown_episode_and_bad_format(client: TestClient) -> None:
    r = client.get(f"/v1/episodes/{uuid.uuid4()}/transcript")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404
    assert client.get(f"/v1/episodes/{KNOWN}/transcript?format=docx").status_code == 422
    assert client.get("/v1/episodes/not-a-uuid/transcript").status_code == 422
