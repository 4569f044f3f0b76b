"""The vector index contract: one cosine collection of points (a UUID, a vector, a JSON payload), the small
filter language callers search with, and the `VectorIndex` protocol both stores implement (Qdrant Edge in
process, a Qdrant server through qdrant-client). Callers never see either library's types."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from podbrief.errors import ConfigurationError

PayloadType = Literal["keyword", "float"]


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection holds and how it is indexed. `model` and `dim` are recorded with the collection, and a
    collection written by another embedding model (or dimension) is refused, since mixed vectors mean nothing.

    `search_ef` is HNSW's candidate list at query time (recall against speed). Qdrant Edge only: opening the
    store builds the HNSW graph first when at least `build_index_min_points` points are outside it (0: never),
    and a build gives a graph only to segments above `indexing_threshold_kb` of vectors; smaller ones are
    searched exactly. A Qdrant server indexes in the background by its own configuration."""

    name: str
    model: str
    dim: int
    payload_indexes: Mapping[str, PayloadType] = field(default_factory=dict)
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    search_ef: int = 128
    quantization: Literal["none", "int8"] = "none"
    quantization_always_ram: bool = True
    build_index_min_points: int = 10_000
    indexing_threshold_kb: int = 10_000

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"collection {self.name!r}: dimension must be positive, got {self.dim}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"collection name {self.name!r} must be a plain, non-hidden name")


@dataclass(frozen=True)
class Point:
    id: uuid.UUID
    vector: np.ndarray
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Hit:
    id: uuid.UUID
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Record:
    id: uuid.UUID
    vector: np.ndarray | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Match:
    """The payload field `key` equals `value`."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class Range:
    """The numeric payload field `key` lies in [gte, lt) (either bound may be open)."""

    key: str
    gte: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class HasId:
    ids: frozenset[uuid.UUID]


Condition = Match | Range | HasId


@dataclass(frozen=True)
class Filter:
    """Every `must` condition holds and no `must_not` condition does. Conditions may name only the collection's
    indexed payload keys (`CollectionSpec.payload_indexes`): a filter on anything else would scan every point,
    and the embedded store keeps the other keys packed together (see `edge.py`)."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not)

    def for_store(self, spec: CollectionSpec) -> tuple[tuple[Condition, ...], tuple[Condition, ...]] | None:
        """The conditions a store must evaluate, checked against `spec`; None when nothing is left (an empty
        HasId excludes nothing)."""
        for c in (*self.must, *self.must_not):
            if isinstance(c, Match | Range) and c.key not in spec.payload_indexes:
                raise ValueError(
                    f"filter on {c.key!r}: collection {spec.name!r} indexes only "
                    f"{', '.join(sorted(spec.payload_indexes)) or 'no payload keys'}"
                )
        must = tuple(c for c in self.must if not (isinstance(c, HasId) and not c.ids))
        must_not = tuple(c for c in self.must_not if not (isinstance(c, HasId) and not c.ids))
        return (must, must_not) if must or must_not else None


@dataclass(frozen=True)
class IndexInfo:
    """`indexed` points are in the HNSW graph; the rest are searched exactly (Qdrant Edge's fresh points)."""

    points: int
    indexed: int
    segments: int

    @property
    def unindexed(self) -> int:
        return max(self.points - self.indexed, 0)


class VectorIndex(Protocol):
    """One cosine collection. Point ids are caller-chosen UUIDs, so writing a point twice is an upsert.

    `open()` creates the collection or verifies the stored one was made for this embedding model and
    dimension (ConfigurationError otherwise); every other call maps the store's failures onto
    `podbrief.errors`."""

    @property
    def spec(self) -> CollectionSpec: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def upsert(self, points: Sequence[Point]) -> None: ...

    async def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[Hit]: ...

    async def retrieve(self, ids: Sequence[uuid.UUID], *, with_vectors: bool = True) -> dict[uuid.UUID, Record]: ...

    async def set_payload(self, ids: Sequence[uuid.UUID], payload: Mapping[str, Any]) -> None: ...

    async def count(self) -> int: ...

    def scan(self, batch: int = 512) -> AsyncIterator[list[Record]]:
        """Every point with its vector and payload, in batches (migrations and exports)."""
        ...

    async def info(self) -> IndexInfo: ...

    async def healthy(self) -> bool: ...


def model_mismatch(spec: CollectionSpec, where: str, model: object, dim: object) -> ConfigurationError:
    return ConfigurationError(
        f"{where} holds vectors of model {model!r} ({dim}-d), but this service embeds with {spec.model!r} "
        f"({spec.dim}-d). Vectors of different models are never mixed: point the service's QDRANT__COLLECTION "
        "setting at a new collection (and re-embed), or configure the original model."
    )


def as_vector(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)
