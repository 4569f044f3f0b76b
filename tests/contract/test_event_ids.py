"""Event ids are part of the contract: consumers drop a redelivered event by its id, so the id of "the same event"
must never change between releases. Every service derives its events' ids with `podbrief.events.ids.event_id`;
these values were computed once, before that function existed, from each service's own formula (ingest,
transcription, extraction and clustering kept theirs; delivery's BriefDelivered moved from the seed
"brief-delivered:<brief>:<status>" to the shared "brief.delivered:<brief>:<status>" when the glue was merged)."""

from __future__ import annotations

import uuid

import pytest
from podbrief.events import ALL_EVENTS
from podbrief.events.ids import event_id

pytestmark = pytest.mark.contract

KEY = uuid.UUID("00000000-0000-4000-8000-000000000001")

PINNED = {
    ("episode.discovered", str(KEY)): "fb16b4bb-2725-5428-ae42-394212a83dbd",
    ("episode.transcribed", str(KEY)): "e333dd25-d079-5e60-913d-eef867803f15",
    ("insights.extracted", str(KEY)): "dcd74e1e-c9fd-5f2d-a15d-bb334c12218c",
    ("insight.clustered", str(KEY)): "e2eeb62c-3c74-59fb-b2f1-71b5907bbd51",
    ("brief.delivered", f"{KEY}:sent"): "5c1ed42a-ed09-5629-ad28-8535d8ebc7d1",
    ("feed.withdrawn", f"{KEY}:blocked"): "ec441642-4083-57a3-8510-8cc114062e1c",
}


@pytest.mark.parametrize(("event_type", "key"), sorted(PINNED))
def test_event_ids_do_not_change(event_type: str, key: str) -> None:
    assert str(event_id(event_type, key)) == PINNED[(event_type, key)]


def test_every_event_type_is_pinned() -> None:
    assert {t for t, _ in PINNED} == {m.model_fields["event_type"].default for m in ALL_EVENTS}


def test_a_uuid_key_and_its_text_give_one_id() -> None:
    assert event_id("episode.discovered", KEY) == event_id("episode.discovered", str(KEY))
