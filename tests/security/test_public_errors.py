"""#21 item 7: extraction's public GET /v1/episodes/{id} gives a stable error code and a short reason for an
episode's last error, never the raw message (a pydantic error with `input_value` and its documentation link);
the raw message stays in the row for the logs and operators."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated

import pytest
from fastapi.testclient import TestClient
from podbrief.events import EpisodeRef
from podbrief.reasons import meaning
from pydantic import Field, TypeAdapter, ValidationError

pytestmark = pytest.mark.unit

SECRET_INPUT = "SPEAKER-" + "x" * 240


def raw_validation_error() -> str:
    try:
        TypeAdapter(Annotated[str, Field(max_length=200)]).validate_python(SECRET_INPUT)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("the value should not validate")


def test_episode_status_answers_the_reason_not_the_raw_error(started: Callable[..., TestClient]) -> None:
    client = started("extraction")
    repo = client.app.state.deps.repo  # type: ignore[attr-defined]
    episode = EpisodeRef(
        episode_id=uuid.uuid4(),
        feed_id=uuid.uuid4(),
        feed_url="https://feeds.example.com/show.xml",
        show="Show",
        title="Episode",
    )
    raw = raw_validation_error()
    assert "input_value" in raw and "errors.pydantic.dev" in raw
    client.portal.call(repo.begin, episode, None)
    client.portal.call(repo.fail, episode.episode_id, raw, "invalid_output")

    r = client.get(f"/v1/episodes/{episode.episode_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "error" and body["error_reason"] == "invalid_output"
    assert body["error"] == meaning("invalid_output") and len(body["error"]) <= 200
    for leak in ("input_value", "pydantic", SECRET_INPUT, "validation error", "last_error"):
        assert leak not in r.text, leak
    # The raw message is kept for operators.
    status = client.portal.call(repo.get, episode.episode_id)
    assert status is not None and status.last_error == raw
