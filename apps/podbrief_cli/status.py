"""`podbrief status`: episodes per stage, failures by reason and consumer lag, for the embedded pipeline of
`podbrief run` (read from its data directory) or for running services (their `GET /v1/status`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import httpx
import typer
from podbrief.bus import MemoryTransport
from podbrief.bus.memory_store import MemoryStore, StoreBusyError
from podbrief.reasons import meaning
from podbrief.settings import DatabaseSettings
from podbrief.status import ServiceStatus, StageStatus, bus_status
from podbrief.storage.db import create_engine
from podbrief.terminal import error_text, plain
from podbrief_run.layout import SERVICES, STAGES, DataDir
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from podbrief_cli.target import TargetError, service_settings

# The state each service counts as "its stage done", in pipeline order.
STAGE_COLUMNS = (
    ("ingest", "discovered"),
    ("transcription", "transcribed"),
    ("extraction", "extracted"),
    ("clustering", "clustered"),
    ("delivery", "in a brief"),
)


async def embedded_status(layout: DataDir) -> tuple[list[ServiceStatus], str | None]:
    """Every service's status from the data directory of `podbrief run`, and a note when the bus could not be
    read (a run holds it)."""
    import importlib

    stages: dict[str, StageStatus] = {}
    for service in SERVICES:
        if not layout.db(service).exists():
            stages[service] = StageStatus()
            continue
        engine = create_engine(DatabaseSettings(url=SecretStr(layout.db_url(service))))
        try:
            stage_status = importlib.import_module(f"podbrief_{service}.status").stage_status
            stages[service] = await stage_status(engine)
        finally:
            await engine.dispose()
    out = [ServiceStatus(service=s, stage=stages[s]) for s in SERVICES]
    if not layout.bus.exists():
        return out, None
    transport = MemoryTransport(store=MemoryStore(layout.bus))
    try:
        await transport.start()
    except StoreBusyError as exc:
        return out, f"consumer lag and dead letters not shown: {exc}"
    try:
        for stage in STAGES:
            consumer, dead = await bus_status(transport, stage.service, [stage.topic])
            i = SERVICES.index(stage.service)
            out[i] = out[i].model_copy(update={"consumer": consumer, "dead_letters": dead})
    finally:
        await transport.stop()
    return out, None


def _service_url(service: str) -> tuple[str, str | None]:
    """The service's API and admin key as its settings (environment, .env) say."""
    settings = service_settings(service)
    host = settings.http.host if settings.http.host not in ("0.0.0.0", "::") else "127.0.0.1"
    key = settings.http.admin_api_key.get_secret_value() if settings.http.admin_api_key else None
    return f"http://{host}:{settings.http.port}", key


async def remote_status(
    urls: dict[str, str], api_key: str | None, transport: httpx.AsyncBaseTransport | None = None
) -> list[ServiceStatus | str]:
    """Each service's `GET /v1/status`; an error message in its place when it does not answer."""

    async def one(client: httpx.AsyncClient, service: str, url: str) -> ServiceStatus | str:
        key = api_key or _service_url(service)[1]
        try:
            r = await client.get(url.rstrip("/") + "/v1/status", headers={"X-API-Key": key} if key else {})
        except httpx.HTTPError as exc:
            return f"unreachable at {url}: {exc!r}"
        if r.status_code != 200:
            detail = r.json().get("detail", r.text) if r.headers.get("content-type", "").endswith("json") else r.text
            return f"{url} answered {r.status_code}: {str(detail)[:300]}"
        try:
            return ServiceStatus.model_validate(r.json())
        except ValidationError as exc:
            return f"{url} answered something that is not a status: {exc.error_count()} error(s)"

    async with httpx.AsyncClient(timeout=30.0, transport=transport) as client:
        return list(await asyncio.gather(*(one(client, s, u) for s, u in urls.items())))


def render(console: Console, statuses: list[ServiceStatus | str], names: list[str]) -> None:
    by_name = {n: s for n, s in zip(names, statuses, strict=True)}
    stages = Table(title="Episodes per stage", title_justify="left")
    for _service, column in STAGE_COLUMNS:
        stages.add_column(column, justify="right")
    stages.add_row(
        *[
            str(s.stage.episodes.get(col, 0)) if isinstance(s := by_name.get(svc), ServiceStatus) else "?"
            for svc, col in STAGE_COLUMNS
        ]
    )
    console.print(stages)
    for name in names:
        s = by_name[name]
        if isinstance(s, str):
            console.print(Text(f"{name}: ", style="bold").append_text(error_text(s)))
            continue
        other = {k: v for k, v in s.stage.episodes.items() if k != dict(STAGE_COLUMNS).get(name)}
        if other:
            console.print(Text(f"{name}: ", style="bold").append(", ".join(f"{k}: {v}" for k, v in other.items())))

    failures = Table(title="Failures by reason", title_justify="left")
    for col in ("service", "what", "reason", "count", "meaning"):
        failures.add_column(col, justify="right" if col == "count" else "left")
    for name in names:
        s = by_name[name]
        if isinstance(s, str):
            continue
        rows = [(what, code, n) for what, reasons in s.stage.failures.items() for code, n in reasons.items()]
        rows += [
            (f"dead letters of {t}", code, n) for t, reasons in s.dead_letters.items() for code, n in reasons.items()
        ]
        for what, code, n in rows:
            failures.add_row(name, what, plain(code), str(n), meaning(code))
    if failures.row_count:
        console.print(failures)
        console.print(
            plain("podbrief dlq list TOPIC shows the dead letters; podbrief dlq replay replays them", style="dim")
        )
    else:
        console.print(Text("No failures recorded.", style="green"))

    lag = Table(title="Consumer lag (messages not yet handled)", title_justify="left")
    for col in ("group", "topic", "lag"):
        lag.add_column(col, justify="right" if col == "lag" else "left")
    for name in names:
        s = by_name[name]
        if isinstance(s, ServiceStatus) and s.consumer is not None:
            for topic, n in s.consumer.lag.items():
                lag.add_row(s.consumer.group, topic, str(n))
    if lag.row_count:
        console.print(lag)


def status(
    data_dir: Annotated[Path, typer.Option(help="the data directory of `podbrief run`")] = Path(".data"),
    url: Annotated[
        list[str] | None,
        typer.Option(help="a running service's API as SERVICE=URL (repeat for each); instead of DATA_DIR"),
    ] = None,
    services: Annotated[
        bool, typer.Option("--services", help="the five running services, at the URLs their settings give")
    ] = False,
    api_key: Annotated[
        str | None, typer.Option(help="admin key for the services (default: each one's <P>_HTTP__ADMIN_API_KEY)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the statuses as JSON")] = False,
) -> None:
    """Episodes per stage (discovered, transcribed, extracted, clustered, in a brief), failures by reason and
    consumer lag: of the embedded pipeline in DATA_DIR, or of running services (--url, --services)."""
    out, err = Console(), Console(stderr=True)
    note: str | None = None
    try:
        if url or services:
            urls: dict[str, str] = {}
            if services:
                urls.update({s: _service_url(s)[0] for s in SERVICES})
            for item in url or []:
                name, sep, where = item.partition("=")
                if not sep or name not in SERVICES or not where.startswith(("http://", "https://")):
                    raise TargetError(f"--url {item!r}: give SERVICE=http(s)://host:port, SERVICE one of {SERVICES}")
                urls[name] = where
            names = [s for s in SERVICES if s in urls]
            statuses = asyncio.run(remote_status({s: urls[s] for s in names}, api_key))
            where_text = "the services at " + ", ".join(f"{s} {urls[s]}" for s in names)
        else:
            layout = DataDir(data_dir.resolve())
            if not layout.root.is_dir():
                raise TargetError(f"no data directory {layout.root}; run `podbrief run` or give --url/--services")
            embedded, note = asyncio.run(embedded_status(layout))
            statuses, names = list(embedded), list(SERVICES)
            where_text = f"the embedded pipeline in {layout.root}"
    except TargetError as exc:
        err.print(error_text(exc))
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            json.dumps([s.model_dump() if isinstance(s, ServiceStatus) else {"error": s} for s in statuses], indent=2)
        )
    else:
        out.print(plain(f"podbrief status of {where_text}", style="bold"))
        render(out, statuses, names)
        if note:
            out.print(plain(note, style="yellow"))
    if any(isinstance(s, str) for s in statuses):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    if all(command.callback is not status for command in app.registered_commands):
        app.command("status")(status)


__all__ = ["embedded_status", "register", "remote_status"]
