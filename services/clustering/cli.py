"""`podbrief cluster FILE.jsonl`: cluster a file of insights with the service's own code path, on a fresh
temporary store unless `--store` names one."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from podbrief.terminal import one_line, plain, safe

if TYPE_CHECKING:
    from podbrief_clustering.clusterer import Outcome
    from podbrief_clustering.settings import ClusteringSettings

# Lines are embedded and assigned in chunks so the progress bar moves; order is kept across chunks.
CHUNK = 32
CLI_NS = uuid.UUID("9d0e8f4e-3f5a-5c43-8a8e-5b2f64c0e1d7")


class OutputFormat(StrEnum):
    table = "table"
    jsonl = "jsonl"


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    show: str


class BadInput(Exception):
    pass


def read_lines(path: Path) -> list[Line]:
    """One insight per non-empty line: {"text": ..., "show": ...optional}; other keys are ignored."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {exc}") from exc
    out: list[Line] = []
    errors: list[str] = []
    for n, text in enumerate(raw.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            errors.append(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            continue
        value = obj.get("text")
        if not isinstance(value, str) or not value.strip():
            errors.append(f'{path}:{n}: "text" must be a non-empty string')
            continue
        if len(value) > 1000:
            errors.append(f'{path}:{n}: "text" is {len(value)} characters; at most 1000')
            continue
        show = obj.get("show", "unknown show")
        if not isinstance(show, str) or not show.strip():
            errors.append(f'{path}:{n}: "show" must be a non-empty string when given')
            continue
        out.append(Line(n, value.strip(), show.strip()[:1000]))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise BadInput("\n".join(shown))
    if not out:
        raise BadInput(f"{path}: no insights (expected one JSON object per line)")
    return out


async def cluster_lines(
    lines: list[Line], settings: ClusteringSettings, *, recluster: bool, progress: Any = None
) -> tuple[list[Outcome], dict[uuid.UUID, Any], dict[uuid.UUID, Any]]:
    """Each line becomes one insight of its own episode, then goes through the service's clusterer."""
    from podbrief.events import EpisodeRef, Insight
    from podbrief_clustering.app import open_clusterer
    from podbrief_clustering.clusterer import Item

    items = []
    for ln in lines:
        key = f"{ln.number}\n{ln.show}\n{ln.text}"
        episode = EpisodeRef(
            episode_id=uuid.uuid5(CLI_NS, "episode:" + key),
            feed_id=uuid.uuid5(CLI_NS, ln.show),
            feed_url=f"file:line/{ln.number}",
            show=ln.show,
            title=f"line {ln.number}",
        )
        items.append(
            Item(
                episode,
                Insight(
                    insight_id=uuid.uuid5(CLI_NS, "insight:" + key),
                    text=ln.text,
                    quote=ln.text,
                    start_s=0,
                    end_s=0,
                ),
            )
        )
    outcomes: list[Outcome] = []
    async with open_clusterer(settings) as clusterer:
        for start in range(0, len(items), CHUNK):
            outcomes.extend(await clusterer.process(items[start : start + CHUNK]))
            if progress is not None:
                progress(len(outcomes))
        if recluster:
            await clusterer.recluster()
        members = await clusterer.repo.members([o.insight_id for o in outcomes])
        clusters = await clusterer.repo.clusters({m.cluster_id for m in members.values()})
    return outcomes, members, clusters


def register(app: typer.Typer) -> None:
    from podbrief_clustering.vectors_cli import vectors

    app.add_typer(vectors, name="vectors")

    @app.command("cluster")
    def cluster(
        file: Annotated[Path, typer.Argument(help='JSON lines: {"text": ..., "show": ...} per insight')],
        format: Annotated[
            OutputFormat,
            typer.Option("--format", help="table of clusters, or one JSON object per input line"),
        ] = OutputFormat.table,
        store: Annotated[
            Path | None,
            typer.Option(help="keep the vectors and clusters in this directory (default: a fresh temporary store)"),
        ] = None,
        recluster: Annotated[
            bool,
            typer.Option(help="re-cluster everything after the online pass, as the service's periodic job would"),
        ] = True,
    ) -> None:
        """Cluster insights: near-duplicates, topic clusters with labels, as the clustering service does."""
        import asyncio
        import tempfile

        from podbrief.errors import ConfigurationError
        from podbrief.settings import DatabaseSettings, QdrantSettings
        from podbrief_clustering.settings import ClusteringSettings
        from pydantic import SecretStr, ValidationError
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        err = Console(stderr=True)
        try:
            lines = read_lines(file)
        except BadInput as exc:
            typer.echo(safe(f"error: {exc}"), err=True)
            raise typer.Exit(2) from None
        with tempfile.TemporaryDirectory(prefix="podbrief-cluster-") as tmp:
            root = store or Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            try:
                settings = ClusteringSettings().model_copy(
                    update={
                        "qdrant": QdrantSettings(path=root / "qdrant"),
                        "db": DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{root / 'clustering.db'}")),
                    }
                )
            except ValidationError as exc:
                typer.echo(safe(f"error: invalid CLUSTERING_* settings: {exc}"), err=True)
                raise typer.Exit(2) from None
            with Progress(
                TextColumn("clustering"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
                disable=not err.is_terminal,
            ) as bar:
                task = bar.add_task("clustering", total=len(lines))
                try:
                    outcomes, members, clusters = asyncio.run(
                        cluster_lines(
                            lines,
                            settings,
                            recluster=recluster,
                            progress=lambda n: bar.update(task, completed=n),
                        )
                    )
                except ConfigurationError as exc:
                    typer.echo(safe(f"error: {exc}"), err=True)
                    raise typer.Exit(2) from None
        line_of = {o.insight_id: ln.number for o, ln in zip(outcomes, lines, strict=True)}
        if format is OutputFormat.jsonl:
            for o, ln in zip(outcomes, lines, strict=True):
                m = members[o.insight_id]
                c = clusters.get(m.cluster_id)
                sys.stdout.write(
                    json.dumps(
                        {
                            "line": ln.number,
                            "cluster_id": str(m.cluster_id),
                            "cluster_label": c.label if c else "",
                            "cluster_size": c.size if c else 1,
                            "duplicate_of": line_of.get(m.duplicate_of) if m.duplicate_of else None,
                            "show": ln.show,
                            "related": [line_of[r.insight_id] for r in o.related if r.insight_id in line_of],
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
            return
        _print_table(lines, outcomes, members, clusters, line_of)


def _print_table(
    lines: list[Line],
    outcomes: list[Outcome],
    members: dict[uuid.UUID, Any],
    clusters: dict[uuid.UUID, Any],
    line_of: dict[uuid.UUID, int],
) -> None:
    from rich.console import Console
    from rich.table import Table

    by_cluster: dict[uuid.UUID, list[Line]] = {}
    dups: dict[uuid.UUID, int] = {}
    for o, ln in zip(outcomes, lines, strict=True):
        m = members[o.insight_id]
        by_cluster.setdefault(m.cluster_id, []).append(ln)
        if m.duplicate_of:
            dups[m.cluster_id] = dups.get(m.cluster_id, 0) + 1
    table = Table(title=f"{len(by_cluster)} clusters from {len(lines)} insights", show_lines=True)
    table.add_column("cluster", no_wrap=True)
    table.add_column("label")
    table.add_column("size", justify="right")
    table.add_column("shows", justify="right")
    table.add_column("dups", justify="right")
    table.add_column("insights (line: text)")
    order = sorted(by_cluster, key=lambda c: (-len(by_cluster[c]), by_cluster[c][0].number))
    for cid in order:
        ls = by_cluster[cid]
        c = clusters.get(cid)
        # Insight texts and labels come from transcripts: plain text, never Rich markup.
        sample = plain("\n".join(f"{ln.number}: {' '.join(ln.text.split())[:90]}" for ln in ls[:4]))
        if len(ls) > 4:
            sample.append(f"\n… {len(ls) - 4} more")
        table.add_row(
            str(cid)[:8],
            one_line(c.label if c else ""),
            str(len(ls)),
            str(len({ln.show for ln in ls})),
            str(dups.get(cid, 0)),
            sample,
        )
    Console(soft_wrap=False).print(table)
