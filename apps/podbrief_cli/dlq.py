"""`podbrief dlq list|show|replay`: the dead letters of a topic, on a deployment's Kafka or in the embedded
bus of `podbrief run`, and their replay once the cause is fixed (podbrief.bus.dlq)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
import typer
from podbrief.bus import Transport, dlq
from podbrief.bus.memory_store import StoreBusyError
from podbrief.errors import PipelineError
from podbrief.events.topics import TOPICS
from podbrief.reasons import meaning
from podbrief.terminal import one_line, plain, safe
from podbrief_run.layout import STAGES
from rich.console import Console
from rich.table import Table

from podbrief_cli.target import BusTarget, DataDirOpt, KafkaOpt, NamespaceOpt, ServiceOpt, TargetError

T = TypeVar("T")

app = typer.Typer(
    name="dlq",
    help="Dead letters: list them, show one, replay them into their topic once the cause is fixed.",
    no_args_is_help=True,
)

TopicArg = Annotated[
    str,
    typer.Argument(
        help="the topic: its name, its .dlq, or a short name "
        f"({', '.join(t for t in TOPICS if any(s.topic == TOPICS[t] for s in STAGES))})"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines on stdout instead of a table")]


def _run(
    data_dir: Any, kafka: str | None, namespace: str, service: str | None, go: Callable[[Transport], Awaitable[T]]
) -> tuple[T, BusTarget]:
    err = Console(stderr=True)
    try:
        target = BusTarget.choose(data_dir=data_dir, kafka=kafka, namespace=namespace, service=service)

        async def main() -> T:
            async with target.open() as transport:
                return await go(transport)

        return asyncio.run(main()), target
    except (TargetError, StoreBusyError, PipelineError) as exc:
        err.print(plain(f"error: {exc}", style="red"))
        raise typer.Exit(2) from None


def _stage_topics() -> list[str]:
    return [s.topic for s in STAGES]


@app.command("list")
def list_(
    topic: Annotated[str | None, typer.Argument(help="a topic (default: every stage's)")] = None,
    reason: Annotated[list[str] | None, typer.Option(help="only these reason codes")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDirOpt = None,
    kafka: KafkaOpt = None,
    namespace: NamespaceOpt = "",
    service: ServiceOpt = None,
) -> None:
    """The dead letters of a topic (or of every stage): when, which message, the error class, reason, message
    and attempts from their headers, and whether a replay has sent them back."""
    topics = [dlq.source_topic(topic)] if topic else _stage_topics()

    async def go(transport: Transport) -> dict[str, list[dlq.DeadLetter]]:
        return {t: await dlq.dead_letters(transport, t) for t in topics}

    found, target = _run(data_dir, kafka, namespace, service, go)
    if reason:
        found = {t: [d for d in letters if d.reason in reason] for t, letters in found.items()}
    if as_json:
        for letters in found.values():
            for d in letters:
                typer.echo(orjson.dumps(d.as_dict()).decode())
        return
    out = Console()
    total = sum(len(v) for v in found.values())
    out.print(plain(f"{total} dead letter(s) in {target.describe()}"))
    for t, letters in found.items():
        if not letters and not topic:
            continue
        table = Table(title=plain(f"{t}.dlq (times in UTC)"), title_justify="left", show_lines=False)
        table.add_column("id", no_wrap=True)
        table.add_column("dead-lettered", overflow="fold")
        for col in ("key", "reason", "class", "tries"):
            table.add_column(col, overflow="fold")  # wrapped, never cut: the key is the episode id to look up
        table.add_column("message", overflow="fold")
        table.add_column("replayed", overflow="fold")
        for d in letters:
            table.add_row(
                d.id,
                _when(d.dead_lettered_at) or "?",
                one_line(d.key or "", 36),
                plain(d.reason),
                plain(d.error_class),
                str(d.attempts),
                one_line(d.message, 160),
                _when(d.replayed_at) or "no",
            )
        out.print(table)
        counts = Counter(d.reason for d in letters)
        for code, n in counts.most_common():
            out.print(plain(f"  {n} x {code}: {meaning(code)}", style="dim"))
    if total:
        out.print(
            plain(
                "show one: podbrief dlq show TOPIC ID; after fixing the cause: podbrief dlq replay TOPIC ID... "
                "(or --reason CODE, or --all)",
                style="dim",
            )
        )


def _when(iso: str | None) -> str | None:
    """A UTC ISO timestamp of the dead-letter headers, as `2026-12-05 02:44:12` for the table."""
    return iso[:19].replace("T", " ") if iso else None


def _shorten(value: Any, limit: int = 400) -> Any:
    """The event for reading: long strings (a packed transcript) cut, so one screen shows it."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + f"… ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    return value


@app.command()
def show(
    topic: TopicArg,
    dead_letter: Annotated[str, typer.Argument(help="its id, PARTITION:OFFSET (from `podbrief dlq list`)")],
    full: Annotated[bool, typer.Option(help="the whole message, long fields included")] = False,
    data_dir: DataDirOpt = None,
    kafka: KafkaOpt = None,
    namespace: NamespaceOpt = "",
    service: ServiceOpt = None,
) -> None:
    """One dead letter: its headers (the error) and the message it holds."""

    async def go(transport: Transport) -> list[dlq.DeadLetter]:
        return await dlq.dead_letters(transport, topic)

    letters, _ = _run(data_dir, kafka, namespace, service, go)
    found = next((d for d in letters if d.id == dead_letter), None)
    if found is None:
        Console(stderr=True).print(plain(f"error: no dead letter {dead_letter} on {dlq.source_topic(topic)}.dlq"))
        raise typer.Exit(1)
    info = found.as_dict(with_value=True)
    raw = str(info.pop("value"))
    try:
        message: Any = json.loads(raw)
        info["message_body"] = message if full else _shorten(message)
    except ValueError:
        info["message_body"] = raw if full else _shorten(raw)
    info["reason_meaning"] = meaning(found.reason)
    # JSON escapes every control character; safe() drops the bidi and invisible ones it leaves.
    typer.echo(safe(json.dumps(info, indent=2, ensure_ascii=False)))


@app.command()
def replay(
    topic: TopicArg,
    ids: Annotated[list[str] | None, typer.Argument(help="dead letters to replay (PARTITION:OFFSET)")] = None,
    reason: Annotated[list[str] | None, typer.Option(help="replay those with these reason codes")] = None,
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter of the topic")] = False,
    data_dir: DataDirOpt = None,
    kafka: KafkaOpt = None,
    namespace: NamespaceOpt = "",
    service: ServiceOpt = None,
) -> None:
    """Send dead letters back to their topic, once the cause is fixed. Each is sent once, however often this
    runs (a ledger on <topic>.dlq.replayed records it); a message that fails again is dead-lettered again."""
    if not ids and not reason and not all_:
        Console(stderr=True).print(plain("error: say which: dead letter ids, --reason CODE, or --all"))
        raise typer.Exit(2)

    async def go(transport: Transport) -> dlq.ReplayReport:
        return await dlq.replay(transport, topic, ids=ids or None, reasons=reason or None)

    report, target = _run(data_dir, kafka, namespace, service, go)
    out = Console()
    out.print(plain(f"replayed {len(report.replayed)} dead letter(s) into {report.topic} on {target.describe()}"))
    if report.replayed:
        out.print(plain("  " + ", ".join(report.replayed)))
    if report.already:
        out.print(plain(f"{len(report.already)} replayed before, not sent again: {', '.join(report.already)}"))
    if report.unknown:
        out.print(plain(f"no such dead letter: {', '.join(report.unknown)}", style="yellow"))
    if report.replayed and target.data_dir is not None:
        out.print(plain(f"the next `podbrief run --data-dir {target.data_dir.root}` processes them"))
    if report.unknown and not report.replayed:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    if all(group.typer_instance is not app for group in root.registered_groups):
        root.add_typer(app)
