"""Moving points between stores: any `VectorIndex` into another, and a qdrant-client local-mode directory (the
embedded store before Qdrant Edge) into a Qdrant Edge store, in place or beside it.

In place, the Edge store is built in a staging directory next to the old one, checked point for point, and only
then swapped in by two renames; the old directory is kept as `<path>.local-mode-<UTC stamp>`. A failure at any
step before the swap leaves the old store as it was."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from podbrief.clock import utcnow
from podbrief.errors import ConfigurationError
from podbrief.storage.vectors.base import CollectionSpec, Point, VectorIndex

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # collection, copied so far, total


async def copy_points(
    source: VectorIndex, target: VectorIndex, *, progress: Progress | None = None, batch: int = 1024
) -> int:
    """Copy every point (vector and payload, same id) from an open source into an open target."""
    total = await source.count()
    copied = 0
    async for records in source.scan(batch):
        await target.upsert([Point(r.id, _vector(r.vector, r.id), r.payload) for r in records])
        copied += len(records)
        if progress is not None:
            progress(source.spec.name, copied, total)
    return copied


async def verify_copy(source: VectorIndex, target: VectorIndex, *, batch: int = 1024) -> None:
    """Every source point is in the target with the same payload and (cosine-)equal vector."""
    if (a := await source.count()) != (b := await target.count()):
        raise ConfigurationError(f"collection {source.spec.name!r}: {a} points in the source, {b} after copying")
    async for records in source.scan(batch):
        copied = await target.retrieve([r.id for r in records])
        for r in records:
            got = copied.get(r.id)
            if got is None or got.payload != r.payload or got.vector is None:
                raise ConfigurationError(f"collection {source.spec.name!r}: point {r.id} did not copy intact")
            want = _unit(_vector(r.vector, r.id))
            if float(np.max(np.abs(_unit(got.vector) - want))) > 1e-4:
                raise ConfigurationError(f"collection {source.spec.name!r}: point {r.id} has another vector")


@dataclass(frozen=True)
class MigratedCollection:
    name: str
    model: str
    dim: int
    points: int


@dataclass(frozen=True)
class Migration:
    source: Path
    target: Path
    kept: Path | None
    collections: tuple[MigratedCollection, ...]


def local_mode_collections(path: Path) -> list[str]:
    from podbrief.storage.vectors.edge import is_local_mode_store

    if not is_local_mode_store(path):
        raise ConfigurationError(f"{path} is not a qdrant-client local-mode store (no meta.json with collections)")
    meta = json.loads((path / "meta.json").read_text())
    return sorted(meta["collections"])


async def migrate_local_mode(
    source: Path,
    *,
    target: Path | None = None,
    spec_for: Callable[[str, str | None, int], CollectionSpec],
    build_index: bool = True,
    progress: Progress | None = None,
) -> Migration:
    """Copy every collection of the local-mode store at `source` into a Qdrant Edge store at `target` (which
    must not exist yet), or in place when `target` is None. `spec_for(name, recorded model or None, dimension)`
    gives each collection's spec; the collection's recorded embedding model wins over the caller's."""
    from qdrant_client import AsyncQdrantClient

    from podbrief.storage.vectors.client import META_MODEL, QdrantClientIndex
    from podbrief.storage.vectors.edge import EdgeIndex

    names = local_mode_collections(source)
    in_place = target is None
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    dest = source.with_name(f"{source.name}.edge-migration-{uuid.uuid4().hex[:8]}") if in_place else target
    assert dest is not None
    if dest.exists() and any(dest.iterdir()):
        raise ConfigurationError(f"{dest} already exists and is not empty; choose a new directory")
    try:
        client = AsyncQdrantClient(path=str(source))
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise ConfigurationError(f"{source} is open in another process (stop the clustering service)") from exc
        raise
    done: list[MigratedCollection] = []
    try:
        for name in names:
            info = await client.get_collection(name)
            vectors = info.config.params.vectors
            dim = getattr(vectors, "size", None)
            if not isinstance(dim, int):
                raise ConfigurationError(f"collection {name!r} in {source} has no single unnamed vector")
            recorded: Mapping[str, object] = info.config.metadata or {}
            model = recorded.get(META_MODEL)
            spec = spec_for(name, model if isinstance(model, str) else None, dim)
            old = QdrantClientIndex(client, replace(spec, payload_indexes={}))
            new = EdgeIndex(dest, spec)
            await new.open(build_index=False)
            try:
                copied = await copy_points(old, new, progress=progress)
                await verify_copy(old, new)
            finally:
                await new.close()
            if build_index:
                # The service is stopped for the migration anyway: the graph is built now rather than at start.
                await new.open(build_index=True)
                await new.close()
            done.append(MigratedCollection(name, spec.model, dim, copied))
            log.info("collection migrated", extra={"collection": name, "points": copied, "target": str(dest)})
    except BaseException:
        await client.close()
        shutil.rmtree(dest, ignore_errors=True)
        raise
    await client.close()
    kept = _swap(source, dest, stamp) if in_place else None
    return Migration(source=kept or source, target=source if in_place else dest, kept=kept, collections=tuple(done))


def _swap(source: Path, staged: Path, stamp: str) -> Path:
    """Two renames on one file system: the path holds the old store or the new one, never a mix."""
    kept = source.with_name(f"{source.name}.local-mode-{stamp}")
    source.rename(kept)
    staged.rename(source)
    return kept


def _vector(values: np.ndarray | None, pid: uuid.UUID) -> np.ndarray:
    if values is None:
        raise ConfigurationError(f"point {pid} has no vector")
    return values


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)
