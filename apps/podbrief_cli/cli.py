"""The `podbrief` command. Each service adds its own commands through `podbrief_<name>.cli.register`;
heavy imports (models, engines) happen inside the commands, never when the CLI loads."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

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
    data_dir: Annotated[Path, typer.Option(help="where the databases, vectors and briefs go")] = Path(".data"),
    email: Annotated[str, typer.Option(help="the demo subscriber's address")] = "you@example.com",
    interests: Annotated[str, typer.Option(help="the demo subscriber's interests, in your own words")] = (
        "artificial intelligence, small language models, energy prices, home batteries, sleep and health"
    ),
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 1800.0,
) -> None:
    """Run the whole pipeline in one process (in-process bus, SQLite, Qdrant local mode, CPU models) until
    idle, then write the brief as HTML and .eml under DATA_DIR and print it."""
    from podbrief_run.runner import run_embedded

    raise typer.Exit(
        run_embedded(feeds=feeds or [], data_dir=data_dir, email=email, interests=interests, timeout_s=timeout)
    )


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
    _register_service_commands()
    app(prog_name="podbrief")


if __name__ == "__main__":
    main()
    sys.exit(0)
