"""The `podbrief` command. Each service adds its own commands through `podbrief_<name>.cli.register`;
heavy imports (models, engines) happen inside the commands, never when the CLI loads."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from podbrief_run.options import RunOptions

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")

app = typer.Typer(
    name="podbrief",
    help="Podcast intelligence: feeds in, a daily brief of grounded insights out.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def service_module(name: str, module: str) -> Any:
    """`podbrief_<name>.<module>` of a known service."""
    if name not in SERVICES:
        raise typer.BadParameter(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")
    return importlib.import_module(f"podbrief_{name}.{module}")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="ingest | transcription | extraction | clustering | delivery")],
    host: Annotated[str | None, typer.Option(help="bind address (default: the service's HTTP__HOST setting)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: the service's HTTP__PORT setting)")] = None,
) -> None:
    """Run one service: its HTTP API, its consumer and its background loops, until SIGTERM."""
    from podbrief.server import serve_service

    code = serve_service(service_module(service, "app").SPEC, host=host, port=port)
    raise typer.Exit(code)


@app.command()
def run(
    feeds: Annotated[
        list[str] | None,
        typer.Option("--feeds", "-f", help="OPML files, feed files or feed URLs; default: the bundled demo set"),
    ] = None,
    all_feeds: Annotated[
        bool, typer.Option("--all-feeds", help="also poll every feed stored by earlier runs in DATA_DIR")
    ] = False,
    data_dir: Annotated[Path, typer.Option(help="where the databases, the bus, vectors and briefs go")] = Path(".data"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="start from an empty DATA_DIR (keeps only downloaded models)")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="compose today's brief again even if an earlier run composed it")
    ] = False,
    email: Annotated[str, typer.Option(help="the demo subscriber's address")] = RunOptions.email,
    interests: Annotated[str, typer.Option(help="the demo subscriber's interests, in your own words")] = (
        RunOptions.interests
    ),
    timeout: Annotated[
        float,
        typer.Option(help="stop waiting for the pipeline after this many seconds (the rest resumes in the next run)"),
    ] = RunOptions.timeout_s,
) -> None:
    """Run the whole pipeline in one process (in-process bus, SQLite, Qdrant Edge, CPU models) on the given feeds
    until idle, compose today's brief from them, write it as HTML and .eml under DATA_DIR, and print what happened
    to every feed and episode. Exits 1 when none of the episodes could be processed and no brief drew on the
    feeds; 2 for unusable input."""
    from podbrief_run.runner import run_embedded

    options = RunOptions(
        feeds=feeds or [],
        all_feeds=all_feeds,
        data_dir=data_dir,
        fresh=fresh,
        force=force,
        email=email,
        interests=interests,
        timeout_s=timeout,
    )
    raise typer.Exit(run_embedded(options))


@app.command()
def web(
    data_dir: Annotated[Path, typer.Option(help="the data directory of `podbrief run`")] = Path(".data"),
    host: Annotated[str, typer.Option(help="bind address of the pages")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the pages (the brief's links point at 8005)")] = 8005,
    clustering_port: Annotated[int, typer.Option(help="port of the search API the pages ask")] = 8004,
) -> None:
    """Serve the web pages of what `podbrief run` stored: the briefs, each insight's page, topics, trending
    topics and search, so the links of a brief written by `podbrief run` open. Ctrl-C stops."""
    from podbrief_run.web import run_web

    raise typer.Exit(run_web(data_dir, host=host, port=port, clustering_port=clustering_port))


@app.command()
def schemas(write: Annotated[bool, typer.Option("--write", help="rewrite the committed snapshots")] = False) -> None:
    """Print the event JSON schemas, or refresh the committed snapshots with --write."""
    from podbrief.events.models import ALL_EVENTS
    from podbrief.events.schemas import event_schema, render, write_snapshots

    if write:
        for path in write_snapshots():
            typer.echo(f"wrote {path}")
        return
    for model in ALL_EVENTS:
        typer.echo(render(event_schema(model)))


@app.command()
def reasons(
    markdown: Annotated[bool, typer.Option("--markdown", help="as a Markdown table")] = False,
    write: Annotated[
        Path | None, typer.Option(help="write the table into this document's generated section 'reasons'")
    ] = None,
) -> None:
    """The reason codes that logs, metrics, dead letters, status APIs and `podbrief run` report."""
    from podbrief import reasons as vocabulary
    from podbrief.generated import write_section

    if write is not None:
        write_section(write, "reasons", vocabulary.markdown_table(), source="`podbrief reasons --write README.md`")
        return
    if markdown:
        typer.echo(vocabulary.markdown_table())
        return
    for group, title in vocabulary.GROUP_TITLES.items():
        typer.echo(f"{title}:")
        for info in vocabulary.REASONS.values():
            if info.group == group:
                typer.echo(f"  {info.code:<28} {info.meaning}")


def _register_service_commands() -> None:
    for name in SERVICES:
        try:
            mod = importlib.import_module(f"podbrief_{name}.cli")
        except ModuleNotFoundError as exc:
            if exc.name == f"podbrief_{name}.cli":
                continue
            raise
        mod.register(app)


def main() -> None:
    from podbrief_cli import dlq, status

    _register_service_commands()
    dlq.register(app)
    status.register(app)
    app(prog_name="podbrief")


if __name__ == "__main__":
    main()
    sys.exit(0)
