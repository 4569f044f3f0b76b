"""The clustering service as an app on the in-memory bus: InsightsExtracted in, InsightClustered out, the
API answers, and a redelivered event changes nothing in the stores."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from podbrief.bus import Bus, MemoryTransport
from podbrief.events import InsightClustered, InsightsExtracted, decode, new_event
from podbrief.events.ids import event_id
from podbrief.events.models import InsightsExtractedPayload
from podbrief.events.topics import INSIGHT_CLUSTERED
from podbrief_clustering.app import create_app

from .conftest import episodes_of, make_settings

pytestmark = pytest.mark.slow

ADMIN_KEY = "test-admin-key-123"


def _wait_for(transport: MemoryTransport, count: int, deadline_s: float = 120.0) -> list[InsightClustered]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        records = transport.records(INSIGHT_CLUSTERED)
        if len(records) >= count:
            return [decode(r.value, InsightClustered) for r in records]  # type: ignore[misc]
        time.sleep(0.1)
    raise AssertionError(f"expected {count} InsightClustered events, saw {len(transport.records(INSIGHT_CLUSTERED))}")


async def test_insights_are_clustered_over_the_bus(tmp_path: Path, labelled: list[dict[str, Any]]) -> None:
    rows = [r for r in labelled if r["topic"] in {"ai_distillation", "home_energy"}]
    episodes = episodes_of(rows)
    events = [
        new_event(
            InsightsExtracted,
            InsightsExtractedPayload(
                episode=ep,
                insights=tuple(ins),
                chunks_total=1,
                chunks_failed=0,
                model="test",
                prompt_version="t1",
            ),
            key=str(ep.episode_id),
            correlation_id=ep.episode_id,
        )
        for ep, ins in episodes
    ]
    total = sum(len(ins) for _, ins in episodes)
    transport = MemoryTransport()
    await transport.start()
    settings = make_settings(
        tmp_path,
        bus={"kind": "memory", "backoff_base_s": 0.01},
        http={"admin_api_key": ADMIN_KEY, "port": 8004},
    )
    app = create_app(settings, transport=transport)
    with TestClient(app) as client:
        bus = Bus(transport, settings.bus)
        for ev in events:
            client.portal.call(bus.publish, ev)  # type: ignore[union-attr]
        out = _wait_for(transport, total)
        by_insight = {e.payload.insight.insight_id: e for e in out}
        assert len(by_insight) == total
        for e in out:
            assert e.event_id == event_id("insight.clustered", e.payload.insight.insight_id)
            assert e.key == str(e.payload.episode.episode_id)
            assert len(e.payload.vector) == 384 and e.payload.embedding_model == settings.embedding.name
            assert e.payload.cluster_size >= 1 and e.payload.cluster_shows >= 1
        # The two DeepSeek paraphrases: the later one corroborates the earlier.
        assert sum(1 for e in out if e.payload.duplicate_of is not None) >= 2
        topics = {e.payload.cluster_id for e in out}
        assert 2 <= len(topics) <= 6

        some = next(e for e in out if e.payload.insight.text.startswith("Distillation lets"))
        resp = client.get(f"/v1/insights/{some.payload.insight.insight_id}/related")
        assert resp.status_code == 200, resp.text
        related = resp.json()["related"]
        assert 2 <= len(related) <= 3
        assert all(r["episode_id"] != str(some.payload.episode.episode_id) for r in related)
        other = [r["show"] != some.payload.episode.show for r in related]
        assert other == sorted(other, reverse=True)
        assert client.get(f"/v1/insights/{uuid.uuid4()}/related").status_code == 404

        found = client.get("/v1/search", params={"q": "home battery with solar panels", "limit": 3}).json()
        assert found["results"][0]["show"] in {"The Energy Gang", "Volts"}
        only = client.get("/v1/search", params={"q": "home battery", "show": "Catalyst"}).json()["results"]
        assert only and all(r["show"] == "Catalyst" for r in only)

        trending = client.get("/v1/clusters", params={"since": "2000-01-01T00:00:00Z"}).json()["clusters"]
        assert trending and trending[0]["growth"] >= trending[-1]["growth"]
        assert all(c["label"] for c in trending)

        assert client.post("/v1/admin/recluster").status_code == 401
        assert client.post("/v1/admin/recluster", headers={"X-API-Key": "wrong"}).status_code == 401
        report = client.post("/v1/admin/recluster", headers={"X-API-Key": ADMIN_KEY})
        assert report.status_code == 200 and report.json()["window_insights"] > 0

        # Redelivery: the same events again re-emit the stored assignments; nothing new is stored.
        deps = app.state.deps
        points = client.portal.call(deps.clusterer.index.count)  # type: ignore[union-attr]
        members_before = client.portal.call(deps.clusterer.repo.all_members)  # type: ignore[union-attr]
        for ev in events:
            client.portal.call(bus.publish, ev)  # type: ignore[union-attr]
        everything = _wait_for(transport, 2 * total)
        # Records come back by partition, not by time: check that every event id now appears exactly twice.
        assert Counter(e.event_id for e in everything) == {e.event_id: 2 for e in out}
        # One insight always lands on one partition, so its later record (the redelivery) comes last.
        again = {e.payload.insight.insight_id: e.payload.cluster_id for e in everything}
        members_after = client.portal.call(deps.clusterer.repo.all_members)  # type: ignore[union-attr]
        assert {m.insight_id: m.cluster_id for m in members_after} == {
            m.insight_id: m.cluster_id for m in members_before
        }
        assert again == {m.insight_id: m.cluster_id for m in members_after}
        assert client.portal.call(deps.clusterer.index.count) == points == total  # type: ignore[union-attr]

        metrics = client.get("/metrics/").text
        assert "podbrief_clustering_insights_embedded_total" in metrics
        assert "podbrief_clustering_duplicates_merged_total" in metrics
        assert client.get("/readyz").status_code == 200
