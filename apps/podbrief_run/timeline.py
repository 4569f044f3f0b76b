"""The timeline of one `podbrief run`: when the run reached each milestone (each service ready, the feeds polled,
the pipeline idle, the brief composed) and when each episode's events were published on the in-process bus.
Written as JSON next to the databases (`run-timeline.json`), so a run can be timed stage by stage; the e2e
benchmark reads it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbrief.bus import MemoryTransport
from podbrief.events import decode, topics
from podbrief.events.models import EpisodeDiscovered, EpisodeTranscribed, InsightClustered, InsightsExtracted

FILE_NAME = "run-timeline.json"
# The stage an episode reached, by the topic whose event says so.
STAGE_TOPICS = (
    ("discovered", topics.EPISODE_DISCOVERED),
    ("transcribed", topics.EPISODE_TRANSCRIBED),
    ("extracted", topics.INSIGHTS_EXTRACTED),
    ("clustered", topics.INSIGHT_CLUSTERED),
)


@dataclass
class Timeline:
    """Wall-clock times (Unix seconds), so they line up with timestamps taken outside the process."""

    started: float = field(default_factory=time.time)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks[name] = time.time()

    def write(self, data_dir: Path, transport: MemoryTransport) -> Path:
        path = data_dir / FILE_NAME
        body = {"started": self.started, "marks": self.marks, "episodes": episodes(transport)}
        path.write_text(json.dumps(body, indent=1) + "\n")
        return path


def episodes(transport: MemoryTransport) -> dict[str, dict[str, Any]]:
    """Per episode id: when it was discovered, transcribed and extracted (each event's `occurred_at`), when its
    last insight was clustered, and how many insights extraction kept."""
    out: dict[str, dict[str, Any]] = {}
    for stage, topic in STAGE_TOPICS:
        for record in transport.records(topic):
            event = decode(record.value)
            assert isinstance(event, EpisodeDiscovered | EpisodeTranscribed | InsightsExtracted | InsightClustered)
            slot = out.setdefault(str(event.payload.episode.episode_id), {})
            at = event.occurred_at.timestamp()
            # Redeliveries re-publish: the first event of a stage counts, except clustering, which is done when
            # the episode's last insight is.
            slot[stage] = max(at, slot.get(stage, at)) if stage == "clustered" else min(at, slot.get(stage, at))
            if isinstance(event, InsightsExtracted):
                slot["insights"] = len(event.payload.insights)
    return out
