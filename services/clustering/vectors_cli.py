"""`podbrief vectors info | build-index | migrate`: the clustering service's vector store, from the command line.

The embedded store (Qdrant Edge) serves one process, so `build-index` and `migrate` run with the clustering
service stopped; they say so and stop if it is not. A Qdrant server (CLUSTERING_QDRANT__URL) builds its own
index, and `info` reads it like the embedded store."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from podbrief.storage.vectors import CollectionSpec
    from podbrief_clustering.settings import ClusteringSettings

vectors = typer.Typer(
    name="vectors", help="The clustering service's vector store: info, HNSW build, migration.", no_args_is_help=True
)

PathOption = Annotated[
    Path | None, typer.Option("--path", help="the embedded store's directory (default: CLUSTERING_QDRANT__PATH)")
]


def _settings(path: Path | None) -> ClusteringSettings:
    from podbrief.settings import QdrantSettings
    from podbrief_clustering.settings import ClusteringSettings
    from pydantic import ValidationError

    try:
        settings = ClusteringSettings()
    except ValidationError as exc:
        _fail(f"invalid CLUSTERING_* settings: {exc}")
    if path is not None:
        settings = settings.model_copy(
            update={"qdrant": QdrantSettings(path=path, collection=settings.qdrant.collection)}
        )
    return settings


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _stored_spec(settings: ClusteringSettings) -> CollectionSpec:
    """The collection as recorded in the embedded store, with this deployment's index tuning."""
    from podbrief.storage.vectors.edge import read_record
    from podbrief_clustering.app import collection_spec

    assert settings.qdrant.path is not None
    root, name = settings.qdrant.path, settings.qdrant.collection
    try:
        record = read_record(root, name)
    except Exception as exc:  # ConfigurationError: an unreadable record
        _fail(str(exc))
    if record is None or not isinstance(record.get("model"), str) or not isinstance(record.get("dim"), int):
        from podbrief.storage.vectors.edge import is_local_mode_store

        if is_local_mode_store(root):
            _fail(f"{root} is a qdrant-client local-mode store; migrate it with `podbrief vectors migrate {root}`")
        _fail(f"no collection {name!r} in {root}")
    return collection_spec(settings, model=record["model"], dim=record["dim"])


def _disk_bytes(path: Path) -> int:
    # Allocated blocks, not apparent sizes: the WAL's files are sparse.
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


@vectors.command("info")
def info(path: PathOption = None) -> None:
    """Points, how many are in the HNSW graph, segments and size of the store."""
    from podbrief.errors import PipelineError
    from podbrief.storage.vectors import VectorIndex, make_vector_index
    from podbrief_clustering.app import collection_spec

    settings = _settings(path)
    if settings.qdrant.url:
        # A server: the configured model is what open() verifies against.
        spec = collection_spec(settings, model=settings.embedding.name, dim=settings.embedding.dim)
        where = f"Qdrant server {settings.qdrant.url}"
    else:
        spec = _stored_spec(settings)
        where = f"Qdrant Edge {settings.qdrant.path}"

    async def read(index: VectorIndex) -> dict[str, Any]:
        if not settings.qdrant.url:
            from podbrief.storage.vectors.edge import EdgeIndex

            assert isinstance(index, EdgeIndex)
            await index.open(build_index=False)
        else:
            await index.open()
        try:
            i = await index.info()
        finally:
            await index.close()
        return {"points": i.points, "indexed": i.indexed, "unindexed": i.unindexed, "segments": i.segments}

    try:
        figures = asyncio.run(read(make_vector_index(settings.qdrant, spec)))
    except PipelineError as exc:
        _fail(str(exc))
    rows = {"store": where, "collection": spec.name, "model": spec.model, "dimension": spec.dim, **figures}
    if not settings.qdrant.url and settings.qdrant.path is not None:
        rows["disk"] = f"{_disk_bytes(settings.qdrant.path / spec.name) / 1e6:.1f} MB"
    width = max(len(k) for k in rows)
    for key, value in rows.items():
        sys.stdout.write(f"{key:<{width}}  {value:,}\n" if isinstance(value, int) else f"{key:<{width}}  {value}\n")


@vectors.command("build-index")
def build_index(path: PathOption = None) -> None:
    """Build the HNSW graph over every point outside it now (minutes at 100,000 points), with the clustering
    service stopped. Until then fresh points are searched exactly, and a service start builds the graph first
    once CLUSTERING_BUILD_INDEX_MIN_POINTS points are outside it."""
    from podbrief.errors import PipelineError
    from podbrief.storage.vectors.edge import EdgeIndex
    from rich.console import Console

    settings = _settings(path)
    if settings.qdrant.url:
        typer.echo("a Qdrant server builds its index in the background; nothing to do", err=True)
        return
    assert settings.qdrant.path is not None
    spec = _stored_spec(settings)
    err = Console(stderr=True, soft_wrap=True)

    async def build() -> tuple[int, int, int]:
        index = EdgeIndex(settings.qdrant.path, spec)  # type: ignore[arg-type]
        await index.open(build_index=False)
        before = await index.info()
        await index.close()
        with err.status(f"building the HNSW graph over {before.unindexed:,} new of {before.points:,} points"):
            await index.open(build_index=True)
        try:
            after = await index.info()
        finally:
            await index.close()
        return before.indexed, after.indexed, after.points

    t0 = time.monotonic()
    try:
        was, now, points = asyncio.run(build())
    except PipelineError as exc:
        _fail(str(exc))
    err.print(
        f"{now:,} of {points:,} points in the HNSW graph (was {was:,}), {time.monotonic() - t0:.0f} s; "
        "the rest are in segments too small for a graph and are searched exactly"
        if now < points
        else f"all {points:,} points in the HNSW graph (was {was:,}), {time.monotonic() - t0:.0f} s"
    )


@vectors.command("migrate")
def migrate(
    source: Annotated[
        Path | None,
        typer.Argument(help="the local-mode directory (default: CLUSTERING_QDRANT__PATH)", show_default=False),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="write the new store here and leave SOURCE as it is (default: in place)"),
    ] = None,
    build: Annotated[
        bool, typer.Option("--build-index/--no-build-index", help="build the HNSW graph now (default) or at start")
    ] = True,
) -> None:
    """Move a store written by qdrant-client's local mode (before Qdrant Edge became the embedded store) into
    Qdrant Edge, with the clustering service stopped. In place, the new store is built beside the old one,
    checked point for point, and swapped in; the old directory is kept as SOURCE.local-mode-<date>."""
    from podbrief.errors import PipelineError
    from podbrief.storage.vectors.migrate import migrate_local_mode
    from podbrief_clustering.app import collection_spec
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = _settings(None)
    src = source or settings.qdrant.path
    if src is None:
        _fail("no source directory: give one, or set CLUSTERING_QDRANT__PATH")
    assert src is not None
    err = Console(stderr=True, soft_wrap=True)

    def spec_for(name: str, model: str | None, dim: int) -> CollectionSpec:
        if model is None:
            err.print(
                f"collection {name!r} records no embedding model; assuming the configured {settings.embedding.name!r}"
            )
        return replace(collection_spec(settings, model=model or settings.embedding.name, dim=dim), name=name)

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"copying {name}", total=total)
            bar.update(tasks[name], completed=done)

        try:
            result = asyncio.run(
                migrate_local_mode(src, target=to, spec_for=spec_for, build_index=build, progress=progress)
            )
        except PipelineError as exc:
            _fail(str(exc))
    for c in result.collections:
        err.print(f"{c.name}: {c.points:,} points ({c.model}, {c.dim}-d) now in Qdrant Edge at {result.target}")
    if result.kept is not None:
        err.print(f"the local-mode store is kept at {result.kept}; remove it once the service runs well")
    elif to is not None:
        err.print(f"point CLUSTERING_QDRANT__PATH at {result.target} to use it")
