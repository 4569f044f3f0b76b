"""`podbrief feeds ...`: parse a feed, and manage the feed registry.

Registry commands work on the ingest database named by the settings (INGEST_DB__URL), or, with `--api URL`,
on a running ingest service through its admin API (key from `--api-key` or INGEST_HTTP__ADMIN_API_KEY).
Against the database directly, new episodes are written to the outbox and the running service publishes
them on its next outbox sweep; the CLI itself never talks to Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from podbrief.terminal import safe

feeds_app = typer.Typer(name="feeds", help="Parse feeds and manage the ingest feed registry.", no_args_is_help=True)

ApiOpt = Annotated[
    str | None, typer.Option("--api", help="base URL of a running ingest service (default: use the database)")
]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", help="admin key for --api (default: INGEST_HTTP__ADMIN_API_KEY)")
]


def register(app: typer.Typer) -> None:
    app.add_typer(feeds_app, name="feeds")


def _out(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(message: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"error: {safe(message)}\n")
    return typer.Exit(code)


def _settings() -> Any:
    from podbrief_ingest.settings import IngestSettings

    return IngestSettings()


@feeds_app.command("parse")
def parse(
    source: Annotated[str, typer.Argument(help="a feed file or an http(s) URL")],
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="extra network (CIDR) or hostname the SSRF guard may fetch from"),
    ] = None,
    feed_url: Annotated[
        str | None,
        typer.Option("--feed-url", help="the feed's URL when parsing a file, so episode ids match the service's"),
    ] = None,
) -> None:
    """Print the parsed feed as JSON, using the service's parser and SSRF guard: the episodes, what was
    dropped and why, what was repaired to read the document, and any live items."""
    from podbrief.errors import PipelineError
    from podbrief_ingest.parser import parse_feed

    try:
        path = Path(source)
        base: str | None = None
        charset: str | None = None
        if not source.startswith(("http://", "https://")):
            if not path.is_file():
                raise _fail(f"{source}: no such file (or give an http/https URL)", 2)
            body = path.read_bytes()
            identity = feed_url or source
        else:
            body, base, charset = asyncio.run(_fetch(source, allow or []))
            identity = feed_url or source
        feed = parse_feed(body, identity, base_url=base, charset=charset)
    except PipelineError as exc:
        raise _fail(f"{source}: {exc} [{exc.reason}]") from None
    _out(parsed_feed_json(feed))


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def parsed_feed_json(feed: Any) -> dict[str, Any]:
    """`podbrief feeds parse` output for a ParsedFeed."""
    return {
        "title": feed.title,
        "guid": feed.podcast_guid,
        "link": feed.link,
        "language": feed.language,
        "blocked": feed.blocked,
        "locked": feed.locked,
        "new_feed_url": feed.new_feed_url,
        "update_frequency": feed.update_frequency,
        "recovered": [{"repair": r.kind, "detail": r.detail} for r in feed.repairs],
        "dropped": dict(feed.dropped),
        "warnings": list(feed.warnings),
        "live_items": [
            {
                "guid": li.guid,
                "title": li.title,
                "status": li.status,
                "start": _when(li.start),
                "end": _when(li.end),
                "enclosure_url": li.enclosure_url,
            }
            for li in feed.live_items
        ],
        "episodes": [
            {
                "guid": it.guid,
                "episode_id": str(it.episode_id),
                "title": it.title,
                "link": it.link,
                "published_at": _when(it.published_at),
                "enclosure_url": it.enclosure_url,
                "enclosure_type": it.enclosure_type,
                "duration_s": it.duration_s,
                "transcripts": [t.model_dump(mode="json", exclude_none=True) for t in it.transcripts],
                "chapters_url": it.chapters_url,
                "problem": it.media_problem(),
                "notes": list(it.notes),
            }
            for it in feed.items
        ],
    }


async def _fetch(url: str, allow: list[str]) -> tuple[bytes, str, str | None]:
    """(body, the URL it came from after redirects, the HTTP charset)."""
    from podbrief.netfetch import GuardedClient
    from podbrief_ingest.adapters.fetcher import FEED_ACCEPT

    settings = _settings()
    net = settings.net.model_copy(update={"allowed_networks": (*settings.net.allowed_networks, *allow)})
    client = GuardedClient(net)
    try:
        res = await client.get(
            url, max_bytes=settings.max_feed_bytes, accept=FEED_ACCEPT, deadline_s=settings.fetch_deadline_s
        )
    finally:
        await client.aclose()
    return res.body, res.url, res.charset


@contextlib.asynccontextmanager
async def _local() -> AsyncIterator[Any]:
    """The ingest composition root without a bus: outbox rows wait for the service to publish them."""
    from podbrief.bus import Bus, MemoryTransport
    from podbrief.metrics import new_registry
    from podbrief.service import ServiceContext
    from podbrief_ingest.app import build_deps

    settings = _settings()
    ctx = ServiceContext("ingest", settings, Bus(MemoryTransport(), settings.bus), new_registry())
    async with build_deps(ctx) as deps:
        deps.outbox.publish = None
        yield deps


def _api(api: str, key: str | None, method: str, path: str, **kw: Any) -> Any:
    import httpx

    token = key
    if token is None:
        secret = _settings().http.admin_api_key
        token = secret.get_secret_value() if secret else None
    headers = {"X-API-Key": token} if token else {}
    try:
        res = httpx.request(method, api.rstrip("/") + path, headers=headers, timeout=300, **kw)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {api}: {exc}") from None
    if res.status_code >= 400:
        try:
            problem = res.json()
            detail = problem.get("detail") or problem.get("title")
        except ValueError:
            detail = res.text[:500]
        raise _fail(f"{res.status_code}: {detail}")
    if res.headers.get("content-type", "").startswith("application/json"):
        return res.json()
    return res.text


def _feed_summary(f: Any) -> dict[str, Any]:
    return {
        "id": str(f.id),
        "url": f.url,
        "title": f.title,
        "status": f.status,
        "last_outcome": f.last_outcome,
        "last_error": f.last_error,
        "error_count": f.error_count,
    }


@feeds_app.command("add")
def add(url: str, api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """Add a feed: fetch and parse it, then record its newest episodes (see INGEST_BACKFILL_LIMIT)."""
    if api:
        _out(_api(api, api_key, "POST", "/v1/feeds", json={"url": url}))
        return

    async def go() -> dict[str, Any]:
        from podbrief.errors import PipelineError

        async with _local() as deps:
            try:
                feed, created, first = await deps.crawler.add_feed(url)
            except PipelineError as exc:
                raise _fail(f"{url}: {exc} [{exc.reason}]") from None
            return {
                "feed": _feed_summary(feed),
                "created": created,
                "first_poll": vars(first) if first else None,
            }

    _out(asyncio.run(go()))


@feeds_app.command("list")
def list_(api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """List registered feeds."""
    if api:
        _out(_api(api, api_key, "GET", "/v1/feeds?limit=1000"))
        return

    async def go() -> list[dict[str, Any]]:
        async with _local() as deps:
            return [_feed_summary(f) for f in await deps.repo.list_feeds(limit=1_000_000)]

    _out(asyncio.run(go()))


@feeds_app.command("remove")
def remove(feed_id: str, api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """Remove a feed and its episode records."""
    try:
        fid = uuid.UUID(feed_id)
    except ValueError:
        raise _fail(f"{feed_id!r} is not a feed id (a UUID; see `podbrief feeds list`)", 2) from None
    if api:
        _api(api, api_key, "DELETE", f"/v1/feeds/{fid}")
        return

    async def go() -> bool:
        async with _local() as deps:
            return bool(await deps.repo.delete_feed(fid))

    if not asyncio.run(go()):
        raise _fail(f"no feed {fid}")


@feeds_app.command("import-opml")
def import_opml(file: Path, api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """Register every feed of an OPML file (each is polled on the service's next tick)."""
    if not file.is_file():
        raise _fail(f"{file}: no such file", 2)
    body = file.read_bytes()
    if api:
        _out(_api(api, api_key, "POST", "/v1/opml", content=body))
        return

    async def go() -> dict[str, Any]:
        from podbrief.errors import PipelineError
        from podbrief_ingest.opml import parse_opml

        try:
            entries = parse_opml(body)
        except PipelineError as exc:
            raise _fail(f"{file}: {exc}") from None
        added: list[str] = []
        existing: list[str] = []
        async with _local() as deps:
            for e in entries:
                if not e["url"].startswith(("http://", "https://")):
                    continue
                feed, created, _ = await deps.crawler.add_feed(e["url"], validate=False)
                (added if created else existing).append(str(feed.id))
        return {"added": added, "existing": existing}

    _out(asyncio.run(go()))


@feeds_app.command("export-opml")
def export_opml(api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """Print every registered feed as OPML."""
    if api:
        sys.stdout.write(str(_api(api, api_key, "GET", "/v1/opml")))
        return

    async def go() -> str:
        from podbrief_ingest.opml import render_opml

        async with _local() as deps:
            return str(render_opml([(f.url, f.title) for f in await deps.repo.list_feeds(limit=1_000_000)]))

    sys.stdout.write(asyncio.run(go()))


@feeds_app.command("poll")
def poll(api: ApiOpt = None, api_key: KeyOpt = None) -> None:
    """Poll every feed once now (with --api: ask the service to poll each feed)."""
    if api:
        feeds = _api(api, api_key, "GET", "/v1/feeds?limit=1000")["items"]
        _out([_api(api, api_key, "POST", f"/v1/feeds/{f['id']}/poll") for f in feeds])
        return

    async def go() -> dict[str, Any]:
        async with _local() as deps:
            return dict(vars(await deps.crawler.poll_all()))

    _out(asyncio.run(go()))
