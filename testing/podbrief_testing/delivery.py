"""Delivery's test support: settings for tests, and InsightClustered events (one, or a small day of them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from podbrief.events import (
    EpisodeRef,
    Insight,
    InsightClustered,
    InsightClusteredPayload,
    RelatedInsight,
    new_event,
)
from podbrief.events.ids import episode_id, feed_id, insight_id
from podbrief.settings import BusSettings, DatabaseSettings, HttpSettings
from podbrief_delivery.settings import DeliverySettings, SmtpSettings
from pydantic import SecretStr

SECRET = "test-signing-secret-0123456789abcdef"
ADMIN_KEY = "test-admin-key-123456"


def make_settings(tmp_path: Path, smtp_port: int, **over: Any) -> DeliverySettings:
    base: dict[str, Any] = {
        "db": DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/delivery.db")),
        "smtp": SmtpSettings(host="127.0.0.1", port=smtp_port, retry_backoff_s=0.0, timeout_s=10),
        "signing_secret": SecretStr(SECRET),
        "public_base_url": "http://testserver",
        "http": HttpSettings(port=8005, admin_api_key=SecretStr(ADMIN_KEY)),
        "bus": BusSettings(kind="memory", max_attempts=2, backoff_base_s=0.0),
        "scheduler_enabled": False,
        "data_dir": tmp_path,
    }
    base.update(over)
    return DeliverySettings(**base)


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def clustered(
    *,
    show: str,
    title: str,
    text: str,
    quote: str | None = None,
    start_s: float = 61.0,
    cluster: str | uuid.UUID | None = None,
    label: str = "",
    cluster_size: int = 1,
    cluster_shows: int = 1,
    importance: float = 0.5,
    vector: Sequence[float] | np.ndarray = (),
    model: str = "all-MiniLM-L6-v2-onnx-int8",
    related: Sequence[RelatedInsight] = (),
    published_at: datetime | None = None,
    link: str | None = "https://example.com/episode",
    enclosure: str | None = "https://cdn.example.com/ep.mp3",
    feed: str | None = None,
) -> InsightClustered:
    feed_url = feed or f"https://feeds.example.com/{show.replace(' ', '-').lower()}.xml"
    ep_id = episode_id(feed_url, title)
    quote = quote or text
    iid = insight_id(ep_id, quote, start_s)
    cl = cluster if isinstance(cluster, uuid.UUID) else uuid.uuid5(uuid.NAMESPACE_URL, str(cluster or iid))
    ep = EpisodeRef(
        episode_id=ep_id,
        feed_id=feed_id(feed_url),
        feed_url=feed_url,
        show=show,
        title=title,
        link=link,
        enclosure_url=enclosure,
        published_at=published_at or NOW - timedelta(hours=6),
    )
    ins = Insight(
        insight_id=iid,
        text=text,
        quote=quote,
        start_s=start_s,
        end_s=start_s + 10,
        importance=importance,
        topics=("test",),
    )
    payload = InsightClusteredPayload(
        episode=ep,
        insight=ins,
        cluster_id=cl,
        cluster_label=label,
        cluster_size=cluster_size,
        cluster_shows=cluster_shows,
        related=tuple(related),
        embedding_model=model,
        vector=tuple(float(x) for x in vector),
    )
    return new_event(
        InsightClustered, payload, key=str(ep_id), correlation_id=ep_id, event_id=uuid.uuid5(iid, "clustered")
    )


# A small day of insights: (cluster, show, episode title, text). Texts are embedded by the real model.
DAY: list[tuple[str, str, str, str]] = [
    (
        "batt",
        "Energy Hour",
        "Batteries at home",
        "Home batteries now pay for themselves in under seven years in sunny regions",
    ),
    (
        "batt",
        "Grid Talk",
        "Storage special",
        "Falling lithium prices make home battery storage cheaper every year",
    ),
    (
        "batt",
        "Money Matters",
        "Household costs",
        "A home battery paired with solar panels cuts electricity bills by half",
    ),
    (
        "nuke",
        "Grid Talk",
        "Reactors",
        "Small modular nuclear reactors face cost overruns similar to large plants",
    ),
    (
        "nuke",
        "Science Weekly",
        "Atoms for peace",
        "New nuclear plants take more than a decade to build in Europe",
    ),
    (
        "ai",
        "Energy Hour",
        "AI and power",
        "Small language models running on phones are closing the gap with cloud models",
    ),
    (
        "ai",
        "Tech Today",
        "On-device AI",
        "On-device AI models now answer most everyday questions without the cloud",
    ),
    (
        "sleep",
        "Health Check",
        "Sleep",
        "Getting less than six hours of sleep raises the risk of heart disease",
    ),
    (
        "rates",
        "Money Matters",
        "Central banks",
        "Central banks are likely to cut interest rates twice next year",
    ),
    ("football", "Sports Desk", "Transfers", "The transfer window shows clubs spending less on strikers"),
    ("bread", "Kitchen Table", "Baking", "Sourdough bread rises better with a longer cold fermentation"),
    (
        "space",
        "Science Weekly",
        "Rockets",
        "Reusable rockets cut the cost of launching satellites by ninety percent",
    ),
    ("grid", "Grid Talk", "Grid", "Grid operators pay households to discharge their batteries at peak times"),
]


# The label clustering gives each of DAY's clusters.
LABELS = {
    "batt": "Home batteries",
    "nuke": "Nuclear power costs",
    "ai": "AI on phones",
    "sleep": "Sleep and health",
    "rates": "Interest rates",
    "football": "Football transfers",
    "bread": "Sourdough baking",
    "space": "Reusable rockets",
    "grid": "Grid flexibility",
}


def day_events(embedder: Any, *, published_at: datetime | None = None) -> list[InsightClustered]:
    vecs = embedder.embed([t for *_, t in DAY])
    by_cluster: dict[str, list[int]] = {}
    for i, (c, *_rest) in enumerate(DAY):
        by_cluster.setdefault(c, []).append(i)
    events = []
    for i, (c, show, title, text) in enumerate(DAY):
        members = by_cluster[c]
        shows = {DAY[j][1] for j in members}
        events.append(
            clustered(
                show=show,
                title=title,
                text=text,
                quote=text + " That is what we found.",
                start_s=60.0 + 37 * i,
                cluster=c,
                label=LABELS[c],
                cluster_size=len(members),
                cluster_shows=len(shows),
                vector=vecs[i],
                published_at=published_at,
                importance=0.6,
            )
        )
    # The related lists clustering would send: the other members of the cluster.
    out = []
    for ev in events:
        rel = [
            RelatedInsight(
                insight_id=o.payload.insight.insight_id,
                text=o.payload.insight.text,
                quote=o.payload.insight.quote,
                show=o.payload.episode.show,
                episode_title=o.payload.episode.title,
                episode_id=o.payload.episode.episode_id,
                start_s=o.payload.insight.start_s,
                link=o.payload.episode.enclosure_url,
                score=0.8,
            )
            for o in events
            if o.payload.cluster_id == ev.payload.cluster_id and o is not ev
        ]
        out.append(ev.model_copy(update={"payload": ev.payload.model_copy(update={"related": tuple(rel)})}))
    return out
