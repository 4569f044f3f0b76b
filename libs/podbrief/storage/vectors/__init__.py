"""Vector storage: the `VectorIndex` protocol and its two implementations, Qdrant Edge in process (the embedded
default, `QDRANT__PATH`) and a Qdrant server through qdrant-client (production, `QDRANT__URL`).

Imported only where vectors are used: both engines are slow to import."""

from __future__ import annotations

from podbrief.settings import QdrantSettings
from podbrief.storage.vectors.base import (
    CollectionSpec,
    Condition,
    Filter,
    HasId,
    Hit,
    IndexInfo,
    Match,
    PayloadType,
    Point,
    Range,
    Record,
    VectorIndex,
)

__all__ = [
    "CollectionSpec",
    "Condition",
    "Filter",
    "HasId",
    "Hit",
    "IndexInfo",
    "Match",
    "PayloadType",
    "Point",
    "Range",
    "Record",
    "VectorIndex",
    "make_vector_index",
]


def make_vector_index(settings: QdrantSettings, spec: CollectionSpec) -> VectorIndex:
    """The configured store for one collection, not yet opened: a server when `url` is set, else Qdrant Edge
    under `path`."""
    if settings.url:
        from podbrief.storage.vectors.client import QdrantClientIndex, make_client

        return QdrantClientIndex(make_client(settings), spec)
    from podbrief.storage.vectors.edge import EdgeIndex

    assert settings.path is not None
    return EdgeIndex(settings.path, spec)
