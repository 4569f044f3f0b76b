"""What the embedded `podbrief run` keeps in its data directory, named once for the runner, `podbrief status`,
`podbrief dlq` and `--fresh`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from podbrief.events import topics

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")


@dataclass(frozen=True)
class Stage:
    """A stage of the pipeline: the service, the topic it consumes (its consumer group is the service's name)."""

    service: str
    topic: str
    label: str  # what the progress bar says while it works


STAGES = (
    Stage("transcription", topics.EPISODE_DISCOVERED, "transcribing episodes"),
    Stage("extraction", topics.EPISODE_TRANSCRIBED, "extracting insights"),
    Stage("clustering", topics.INSIGHTS_EXTRACTED, "clustering insights"),
    Stage("delivery", topics.INSIGHT_CLUSTERED, "ranking candidates"),
)


def consumer_of(topic: str) -> Stage | None:
    return next((s for s in STAGES if s.topic == topic), None)


@dataclass(frozen=True)
class DataDir:
    root: Path

    def db(self, service: str) -> Path:
        return self.root / f"{service}.db"

    def db_url(self, service: str) -> str:
        return f"sqlite+aiosqlite:///{self.db(service)}"

    @property
    def bus(self) -> Path:
        """The in-process bus between runs (podbrief.bus.memory_store)."""
        return self.root / "bus.sqlite"

    @property
    def qdrant(self) -> Path:
        return self.root / "qdrant"

    @property
    def briefs(self) -> Path:
        return self.root / "briefs"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def log(self) -> Path:
        return self.root / "podbrief.log"

    @property
    def signing_secret(self) -> Path:
        return self.root / "signing-secret"

    @property
    def timeline(self) -> Path:
        """When the last run reached each milestone and each episode each stage (podbrief_run.timeline)."""
        return self.root / "run-timeline.json"

    def state(self) -> list[Path]:
        """What an earlier run left that `--fresh` removes: stores, the bus, briefs and the log. The models
        (downloads and builds, not state) stay."""
        names = [self.db(s) for s in SERVICES]
        wal = [p.with_name(p.name + suffix) for p in [*names, self.bus] for suffix in ("-wal", "-shm", "-journal")]
        candidates = [*names, *wal, self.bus]
        candidates += [self.qdrant, self.briefs, self.log, self.signing_secret, self.timeline]
        return [p for p in candidates if p.exists()]

    def wipe(self) -> list[Path]:
        """Remove `state()`; returns what was removed. Nothing else in the directory is touched."""
        removed = self.state()
        for path in removed:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        return removed
