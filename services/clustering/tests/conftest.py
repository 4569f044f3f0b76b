"""Fixtures for the clustering tests: the real MiniLM embedder (loaded once), a fast hashing embedder for
logic tests, per-test settings on tmp_path (a Qdrant Edge store serves one process), and the labelled set."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from podbrief.events import EpisodeRef, Insight
from podbrief.settings import DatabaseSettings, QdrantSettings
from podbrief_clustering.clusterer import Item
from podbrief_clustering.settings import ClusteringSettings
from pydantic import SecretStr

DATA = Path(__file__).parent / "data"
NS = uuid.UUID("0b6c53d2-7d0c-4f7e-9a57-6d1f8d1b9a11")


class CachingEmbedder:
    """The real embedder, memoised per text: the tests embed the same sentences many times."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            for t, v in zip(missing, self.inner.embed(missing), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


class HashEmbedder:
    """A deterministic bag-of-words embedder: sentences sharing words are close. Enough for logic tests."""

    def __init__(self, dim: int = 384, name: str = "test-hash-bow") -> None:
        self._dim, self._name = dim, name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                if len(w) > 3:
                    out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self._dim] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


@pytest.fixture(scope="session")
def real_embedder() -> CachingEmbedder:
    from podbrief.embeddings import Embedder

    return CachingEmbedder(Embedder())


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


def make_settings(tmp: Path, **overrides: Any) -> ClusteringSettings:
    return ClusteringSettings(
        _env_file=None,  # type: ignore[call-arg]
        qdrant=QdrantSettings(path=tmp / "qdrant"),
        db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp / 'clustering.db'}")),
        recluster_interval_s=0,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path) -> ClusteringSettings:
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def labelled() -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (DATA / "labelled_insights.jsonl").read_text().splitlines() if line]
    assert len(rows) >= 40 and len({r["topic"] for r in rows}) >= 5
    return rows


def episode_for(show: str, title: str) -> EpisodeRef:
    slug = re.sub(r"[^a-z0-9]+", "-", show.lower()).strip("-")
    return EpisodeRef(
        episode_id=uuid.uuid5(NS, f"{show}\n{title}"),
        feed_id=uuid.uuid5(NS, show),
        feed_url=f"https://feeds.example.com/{slug}.xml",
        show=show,
        title=title,
        link=f"https://{slug}.example.com/{re.sub(r'[^a-z0-9]+', '-', title.lower())}",
    )


def insight_for(row: dict[str, Any], position: int) -> Insight:
    return Insight(
        insight_id=uuid.uuid5(NS, f"insight:{row['id']}"),
        text=row["text"],
        quote=row["text"],
        start_s=60.0 * position,
        end_s=60.0 * position + 20,
    )


def episodes_of(rows: list[dict[str, Any]]) -> list[tuple[EpisodeRef, list[Insight]]]:
    """The labelled rows grouped into episodes, in file order, as extraction would emit them."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        grouped.setdefault((r["show"], r["episode"]), []).append(r)
    return [
        (episode_for(show, title), [insight_for(r, i) for i, r in enumerate(rs)])
        for (show, title), rs in grouped.items()
    ]


def items_of(rows: list[dict[str, Any]]) -> Iterator[list[Item]]:
    for ep, insights in episodes_of(rows):
        yield [Item(ep, i) for i in insights]
