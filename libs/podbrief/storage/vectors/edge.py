"""`VectorIndex` on Qdrant Edge: Qdrant's own engine (segments, payload indexes, filters, HNSW) in this process.
The embedded default (CLUSTERING_QDRANT__PATH).

How it is used, from what the engine does:
- Every call is synchronous and holds the GIL, so it runs on the caller's thread: a search costs the event loop
  its own duration (milliseconds), and a worker thread would buy nothing.
- Fresh points land in an appendable segment that is searched exactly. Building the HNSW graph (`optimize`)
  takes minutes at 100,000 points and holds the GIL throughout, so it never runs while the store serves:
  `open()` builds it first, in a child process, when more than `spec.build_index_min_points` points are
  outside the graph, and `podbrief vectors build-index` builds it on demand with the service stopped.
  Searches combine both: HNSW over indexed segments, exact over the rest.
- One process may open a store. A lock file says which (Edge's own WAL lock only says "WouldBlock"), and
  backups take the same lock.
- Edge keeps no collection metadata: the embedding model and dimension live in `podbrief.json` beside the
  shard, and a mismatch is refused as on a server.
- The binding converts each payload value by trying bool, integers and float before string, at 10-20 us a
  value, which would make payload conversion most of an insert. So the keys the collection indexes (the only
  ones filters may name) are stored as themselves and every other key travels packed as one JSON string
  (`_doc`), unpacked on every read: callers see the payload they wrote.

Layout under the configured directory (CLUSTERING_QDRANT__PATH), one subdirectory per collection:

    <path>/<collection>/podbrief.json   model, dimension, engine, format
    <path>/<collection>/.lock           flock held while a process has the collection open
    <path>/<collection>/shard/          the Edge shard (WAL, segments)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import qdrant_edge as qe

from podbrief.clock import utcnow
from podbrief.errors import ConfigurationError, PermanentError, RetryableError, UnavailableError
from podbrief.storage.vectors.base import (
    CollectionSpec,
    Condition,
    Filter,
    Hit,
    IndexInfo,
    Match,
    Point,
    Range,
    Record,
    as_vector,
    model_mismatch,
)

log = logging.getLogger(__name__)

META_FILE = "podbrief.json"
LOCK_FILE = ".lock"
SHARD_DIR = "shard"
ENGINE = "qdrant-edge"
FORMAT = 1
SCHEMA = {"keyword": qe.PayloadSchemaType.Keyword, "float": qe.PayloadSchemaType.Float}
# Points per update call: bounded so one huge batch never builds one huge request in memory.
WRITE_BATCH = 1024
BUILD_PROGRESS_EVERY_S = 15.0
# Writes are durable once in the WAL (a killed process loses nothing); flushing segments bounds the WAL and
# its replay at the next start. A flush costs ~0.1-0.2 s, so it runs at most this often, on the write path.
FLUSH_EVERY_S = 30.0

# The payload keys that are not indexed, as one JSON string (see the module docstring).
DOC_KEY = "_doc"
# Qdrant's error messages start with the kind of failure; the binding raises plain Exception with that text.
_PERMANENT = ("Wrong input", "Vector dimension error", "Bad request", "Validation failed", "Not found", "Bad input")
_UNAVAILABLE = ("No space left on device", "Too many open files", "Out of memory")


@contextlib.contextmanager
def edge_errors(op: str) -> Iterator[None]:
    """Map the engine's plain exceptions onto `podbrief.errors` by their message."""
    try:
        yield
    except Exception as exc:
        if type(exc) is not Exception:
            raise  # TypeError and friends: a bug on our side, not the store's
        text = str(exc)
        if text.startswith(_PERMANENT):
            raise PermanentError(f"qdrant edge {op}: {text}", reason="qdrant_edge_refused") from exc
        if any(s in text for s in _UNAVAILABLE):
            # Not this message's fault, and true for every message until an operator acts.
            raise UnavailableError(f"qdrant edge {op}: {text}", reason="qdrant_edge_resources") from exc
        raise RetryableError(f"qdrant edge {op}: {text}", reason="qdrant_edge_failed") from exc


def is_local_mode_store(path: Path) -> bool:
    """A qdrant-client local-mode directory (the embedded store before Qdrant Edge)."""
    meta = path / "meta.json"
    if not meta.is_file() or not (path / "collection").is_dir():
        return False
    try:
        return isinstance(json.loads(meta.read_text()).get("collections"), dict)
    except (OSError, ValueError, AttributeError):
        return False


def read_record(root: Path, collection: str) -> dict[str, Any] | None:
    """The embedding record of a collection under `root` (model, dimension), or None when there is none."""
    try:
        record = json.loads((root / collection / META_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{root / collection / META_FILE} is unreadable ({exc})") from exc
    return record if isinstance(record, dict) else None


def edge_config(spec: CollectionSpec) -> qe.EdgeConfig:
    quant = None
    if spec.quantization == "int8":
        quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=spec.quantization_always_ram)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(
            m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct, full_scan_threshold=spec.indexing_threshold_kb
        ),
        quantization_config=quant,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=spec.indexing_threshold_kb),
    )


def _condition(c: Condition) -> Any:
    if isinstance(c, Match):
        return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
    if isinstance(c, Range):
        return qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, lt=c.lt))
    return qe.HasIdCondition(set(c.ids))


def to_filter(flt: Filter | None, spec: CollectionSpec) -> qe.Filter | None:
    parts = flt.for_store(spec) if flt else None
    if parts is None:
        return None
    must, must_not = ([_condition(c) for c in cs] or None for cs in parts)
    return qe.Filter(must=must, must_not=must_not)


class EdgeIndex:
    """One cosine collection in a Qdrant Edge shard under `root/<collection>`."""

    def __init__(self, root: Path, spec: CollectionSpec) -> None:
        self.root = root
        self._spec = spec
        self.dir = root / spec.name
        self._shard: qe.EdgeShard | None = None
        self._lock: IO[bytes] | None = None
        self._flushed_at = time.monotonic()

    @property
    def spec(self) -> CollectionSpec:
        return self._spec

    @property
    def shard_dir(self) -> Path:
        return self.dir / SHARD_DIR

    @property
    def shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError(f"the vector store {self.dir} is not open")
        return self._shard

    # -- opening and closing ---------------------------------------------------------------------------------

    async def open(self, *, build_index: bool | None = None) -> None:
        """Lock the collection, create or verify it, and build the HNSW graph first when too many points are
        outside it (`build_index`: True always builds, False never, None follows the spec)."""
        if self._shard is not None:
            return
        if is_local_mode_store(self.root):
            raise ConfigurationError(
                f"{self.root} holds a qdrant-client local-mode store, the embedded store before Qdrant Edge. "
                f"Migrate it once with `podbrief vectors migrate {self.root}` (the old directory is kept), "
                "then start again."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = _take_lock(self.dir)
        try:
            record = self._check_meta()
            self._load()
            if record is not None:
                _write_json(self.dir / META_FILE, record)
            self._ensure_payload_indexes()
            info = self._info()
            automatic = build_index is None
            if build_index is None:
                limit = self._spec.build_index_min_points
                build_index = limit > 0 and info.unindexed >= limit
            if build_index and info.unindexed > 0:
                self._close_shard()
                try:
                    await build_index_in_child(self.shard_dir, self._spec, info)
                except ConfigurationError as exc:
                    if not automatic:
                        raise
                    # Every point is still searchable, the fresh ones exactly: serve slower rather than not at all.
                    log.error(
                        "HNSW index build failed; serving with exact search for the points outside the graph",
                        extra={"store": str(self.dir), "unindexed": info.unindexed, "error": str(exc)},
                    )
                self._load()
        except BaseException:
            self._close_shard()
            self._release()
            raise

    def _check_meta(self) -> dict[str, Any] | None:
        """Verify the embedding record; without one, return the record to write once the shard has opened (so
        a shard that does not fit is refused without being claimed)."""
        p = self._spec
        meta_path = self.dir / META_FILE
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigurationError(f"{meta_path} is unreadable ({exc}); restore it from a backup") from exc
            if meta.get("engine") != ENGINE or meta.get("format") != FORMAT:
                raise ConfigurationError(
                    f"{meta_path} describes a {meta.get('engine')!r} store of format {meta.get('format')!r}; "
                    f"this podbrief reads {ENGINE!r} format {FORMAT}"
                )
            if meta.get("model") != p.model or meta.get("dim") != p.dim:
                raise model_mismatch(p, f"Qdrant Edge collection {str(self.dir)!r}", meta.get("model"), meta.get("dim"))
            return None
        if self.shard_dir.exists() and any(self.shard_dir.iterdir()):
            # A shard without our record (unpacked from a snapshot, or made by hand): claimed when its vectors
            # have this dimension; loading it with our config refuses any other shape.
            log.warning("vector store had no embedding record; recording it", extra={"store": str(self.dir)})
        return {
            "engine": ENGINE,
            "format": FORMAT,
            "collection": p.name,
            "model": p.model,
            "dim": p.dim,
            "distance": "cosine",
            "created_at": utcnow().isoformat(timespec="seconds"),
        }

    def _load(self) -> None:
        path = str(self.shard_dir)
        config = edge_config(self._spec)
        exists = self.shard_dir.exists() and any(self.shard_dir.iterdir())
        try:
            with edge_errors("open"):
                self._shard = qe.EdgeShard.load(path, config) if exists else qe.EdgeShard.create(path, config)
        except (RetryableError, PermanentError) as exc:
            if isinstance(exc, PermanentError) or "ncompatible" in str(exc):
                raise ConfigurationError(
                    f"the vector store {self.shard_dir} does not fit collection {self._spec.name!r} "
                    f"({self._spec.dim}-d cosine): {exc}"
                ) from exc
            raise ConfigurationError(f"cannot open the vector store {self.shard_dir}: {exc}") from exc
        if not exists:
            log.info(
                "vector store created",
                extra={"store": str(self.dir), "model": self._spec.model, "dim": self._spec.dim},
            )

    def _ensure_payload_indexes(self) -> None:
        with edge_errors("payload index"):
            have = set(self.shard.info().payload_schema)
            for key, kind in self._spec.payload_indexes.items():
                if key not in have:
                    self.shard.update(qe.UpdateOperation.create_field_index(key, SCHEMA[kind]))

    async def close(self) -> None:
        self._close_shard()
        self._release()

    def _close_shard(self) -> None:
        if self._shard is not None:
            shard, self._shard = self._shard, None
            with edge_errors("close"):
                shard.close()

    def _release(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.close()

    # -- the protocol ----------------------------------------------------------------------------------------

    def _pack(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        if DOC_KEY in payload:
            raise ValueError(f"payload key {DOC_KEY!r} is reserved by the embedded store")
        indexed = self._spec.payload_indexes
        out: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for k, v in payload.items():
            (out if k in indexed else rest)[k] = v
        if rest:
            out[DOC_KEY] = orjson.dumps(rest).decode()
        return out

    async def upsert(self, points: Sequence[Point]) -> None:
        for start in range(0, len(points), WRITE_BATCH):
            chunk = [
                qe.Point(p.id, np.asarray(p.vector, dtype=np.float32).tolist(), self._pack(p.payload))
                for p in points[start : start + WRITE_BATCH]
            ]
            with edge_errors("upsert"):
                self.shard.update(qe.UpdateOperation.upsert_points(chunk))
        self._written()

    async def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            filter=to_filter(filter, self._spec),
            with_payload=True,
            with_vector=False,
            score_threshold=score_threshold,
            params=qe.SearchParams(hnsw_ef=self._spec.search_ef, exact=exact),
        )
        with edge_errors("search"):
            found = self.shard.query(request)
        return [Hit(_uuid(p.id), float(p.score), _unpack(p.payload)) for p in found]

    async def retrieve(self, ids: Sequence[uuid.UUID], *, with_vectors: bool = True) -> dict[uuid.UUID, Record]:
        out: dict[uuid.UUID, Record] = {}
        for start in range(0, len(ids), WRITE_BATCH):
            # The binding wants both flags spelled out.
            with edge_errors("retrieve"):
                recs = self.shard.retrieve(list(ids[start : start + WRITE_BATCH]), True, with_vectors)
            for r in recs:
                out[_uuid(r.id)] = _record(r, with_vectors)
        return out

    async def set_payload(self, ids: Sequence[uuid.UUID], payload: Mapping[str, Any]) -> None:
        """Set (add or replace) these keys on every point of `ids`, keeping the others."""
        if not ids or not payload:
            return
        packed = self._pack(payload)
        rest = packed.pop(DOC_KEY, None)
        if packed:
            with edge_errors("set_payload"):
                self.shard.update(qe.UpdateOperation.set_payload(list(ids), packed))
        if rest is not None:
            # Packed keys: each point's other keys are read back and merged (points differ, so one write each).
            update = orjson.loads(rest)
            current = await self.retrieve(ids, with_vectors=False)
            indexed = self._spec.payload_indexes
            with edge_errors("set_payload"):
                for pid, record in current.items():
                    merged = {k: v for k, v in record.payload.items() if k not in indexed} | update
                    doc = orjson.dumps(merged).decode()
                    self.shard.update(qe.UpdateOperation.set_payload([pid], {DOC_KEY: doc}))
        self._written()

    def _written(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_EVERY_S:
            with edge_errors("flush"):
                self.shard.flush()
            self._flushed_at = time.monotonic()

    async def count(self) -> int:
        with edge_errors("count"):
            return int(self.shard.count(qe.CountRequest(exact=True)))

    async def scan(self, batch: int = 512) -> AsyncIterator[list[Record]]:
        offset: Any = None
        while True:
            with edge_errors("scroll"):
                recs, offset = self.shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=True)
                )
            if recs:
                yield [_record(r, True) for r in recs]
            if offset is None:
                return

    async def info(self) -> IndexInfo:
        return self._info()

    def _info(self) -> IndexInfo:
        with edge_errors("info"):
            i = self.shard.info()
        return IndexInfo(points=i.points_count, indexed=i.indexed_vectors_count, segments=i.segments_count)

    async def healthy(self) -> bool:
        if self._shard is None:
            return False
        try:
            self._shard.count(qe.CountRequest(exact=False))
        except Exception:
            return False
        return True


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _unpack(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    payload = dict(stored or {})
    doc = payload.pop(DOC_KEY, None)
    if isinstance(doc, str):
        return {**orjson.loads(doc), **payload}
    return payload


def _record(r: Any, with_vectors: bool) -> Record:
    vec = as_vector(r.vector) if with_vectors and r.vector is not None else None
    return Record(_uuid(r.id), vec, _unpack(r.payload))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _take_lock(directory: Path) -> IO[bytes]:
    handle = (directory / LOCK_FILE).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigurationError(
            f"the vector store {directory} is open in another process (a store serves one process: stop the "
            "other one, e.g. the clustering service or a backup, or point QDRANT__PATH elsewhere)"
        ) from None
    return handle


# -- building the HNSW graph in a child process ---------------------------------------------------------------


async def build_index_in_child(shard_dir: Path, spec: CollectionSpec, info: IndexInfo) -> dict[str, Any]:
    """Run Edge's optimizer on a closed shard in a child process, logging progress while it works. The child
    holds the GIL for minutes; here the event loop keeps running (signals, logs), and the child dies with us."""
    log.info(
        "building the HNSW index",
        extra={"store": str(shard_dir), "points": info.points, "unindexed": info.unindexed},
    )
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "podbrief.storage.vectors.edge_build",
        str(shard_dir),
        json.dumps(asdict(spec)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_die_with_parent,
    )
    communicate = asyncio.ensure_future(proc.communicate())
    try:
        while True:
            done, _ = await asyncio.wait({communicate}, timeout=BUILD_PROGRESS_EVERY_S)
            if done:
                break
            log.info(
                "building the HNSW index",
                extra={"store": str(shard_dir), "unindexed": info.unindexed, "elapsed_s": round(time.monotonic() - t0)},
            )
        out, err = communicate.result()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise ConfigurationError(f"building the HNSW index of {shard_dir} failed: {' | '.join(tail)}")
    result: dict[str, Any] = json.loads(out.decode())
    log.info("HNSW index built", extra={"store": str(shard_dir), **result})
    return result


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if this service dies (SIGKILL included) the child goes too, releasing the shard.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
