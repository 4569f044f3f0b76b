"""The timeline of one `podbrief run`: when the run reached each milestone (each service ready, the feeds polled,
the pipeline idle, the brief composed) and when each of the run's episodes was published on the in-process bus at
each stage (and how many of its insights the brief carries), with the services' counters read at the start of the
poll and when the brief is composed (so the handler, download, transcription and LLM seconds the run spent can be
told apart from the time an episode waited). Written as JSON in the data directory (`DataDir.timeline`, replaced
by every run), so a run can be timed stage by stage; the e2e benchmark reads it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbrief.bus import MemoryTransport
from podbrief.events import decode, topics
from podbrief.events.models import EpisodeDiscovered, EpisodeTranscribed, InsightClustered, InsightsExtracted
from podbrief.metrics import running_totals
from prometheus_client import CollectorRegistry

from podbrief_run.layout import DataDir
from podbrief_run.outcomes import BusMark

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
    # mark -> service -> counter -> value (podbrief.metrics.running_totals), read at that mark.
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def mark(self, name: str, registries: Mapping[str, CollectorRegistry] | None = None) -> None:
        """Note the time; with `registries` (service -> its registry), also what their counters read."""
        self.marks[name] = time.time()
        if registries is not None:
            self.metrics[name] = {svc: running_totals(r.collect()) for svc, r in registries.items()}

    def write(
        self, layout: DataDir, transport: MemoryTransport, mark: BusMark, in_brief: Mapping[str, int] | None = None
    ) -> Path:
        """`in_brief`: per episode id, how many of its insights the run's composed brief carries."""
        stages = episodes(transport, mark)
        for eid, n in (in_brief or {}).items():
            if eid in stages:
                stages[eid]["in_brief"] = n
        body = {"started": self.started, "marks": self.marks, "metrics": self.metrics, "episodes": stages}
        layout.timeline.write_text(json.dumps(body, indent=1) + "\n")
        return layout.timeline


def episodes(transport: MemoryTransport, mark: BusMark) -> dict[str, dict[str, Any]]:
    """Per episode id, for what was published in this run (after `mark`): when it was discovered, transcribed and
    extracted (each event's `occurred_at`), when its last insight was clustered, and how many insights extraction
    kept."""
    out: dict[str, dict[str, Any]] = {}
    for stage, topic in STAGE_TOPICS:
        for record in transport.records(topic):
            if not mark.is_new(record):
                continue
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
