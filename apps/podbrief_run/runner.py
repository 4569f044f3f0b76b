"""`podbrief run`: the whole pipeline in one process. The five services run with their real code on one
in-process bus, with SQLite, Qdrant Edge (the embedded vector store) and CPU models; feeds and audio that live
on this machine are served from loopback (`localhost.LocalHost`). It runs until the pipeline is idle, then
composes the brief and writes it as HTML and .eml.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from defusedxml import ElementTree
from fastapi import FastAPI
from podbrief import logging as plog
from podbrief.bus import MemoryTransport
from podbrief.clock import utcnow
from podbrief.errors import ConfigurationError
from podbrief.events import topics
from podbrief.settings import BusSettings, DatabaseSettings, NetSettings, QdrantSettings
from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from podbrief_run.localhost import LocalHost

log = logging.getLogger(__name__)

DEMO_PORT = 8737  # a fixed port keeps demo feed URLs, and so episode ids, stable across runs
LOOPBACK = ("127.0.0.0/8", "localhost")
STAGES = (
    ("transcription", topics.EPISODE_DISCOVERED, "transcribing episodes"),
    ("extraction", topics.EPISODE_TRANSCRIBED, "extracting insights"),
    ("clustering", topics.INSIGHTS_EXTRACTED, "clustering insights"),
    ("delivery", topics.INSIGHT_CLUSTERED, "ranking candidates"),
)


class FeedInputError(ValueError):
    pass


class FileMailer:
    """Delivery's mailer for the embedded run: each message is written as an .eml file instead of sent."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.sent: list[tuple[Path, EmailMessage]] = []

    async def send(self, message: EmailMessage) -> str:
        self.outbox.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kind = "brief" if "List-Unsubscribe" in message else "mail"
        path = self.outbox / f"{stamp}-{kind}-{len(self.sent) + 1}.eml"
        path.write_bytes(message.as_bytes(policy=policy.SMTP))
        self.sent.append((path, message))
        return f"<{path.name}>"


def _serve_demo(server: LocalHost) -> list[str]:
    from podbrief_run import demo

    urls = []
    for slug in demo.shows():
        feed = demo.render_feed(server.base_url, slug)
        urls.append(server.add_bytes(f"/demo/{slug}.xml", feed, "application/rss+xml"))
    for ep in demo.episodes():
        path = demo.audio_path(ep)
        server.add_file(f"/audio/{path.name}", path, demo.AUDIO_MIME_TYPE)
    return urls


def _opml_urls(path: Path) -> list[str]:
    try:
        root = ElementTree.fromstring(path.read_bytes())
    except Exception as exc:
        raise FeedInputError(f"{path}: not a readable OPML file ({exc})") from exc
    urls = [o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")]
    if not urls:
        raise FeedInputError(f"{path}: the OPML file lists no feeds (no outline with an xmlUrl)")
    return [u for u in urls if u]


def resolve_feeds(inputs: Sequence[str], server: LocalHost) -> tuple[list[str], bool]:
    """Feed URLs for the inputs (URLs, OPML files, feed files), and whether anything is served from loopback."""
    if not inputs:
        return _serve_demo(server), True
    urls: list[str] = []
    local = False
    for item in inputs:
        if item.startswith(("http://", "https://")):
            urls.append(item)
            continue
        path = Path(item)
        if not path.is_file():
            raise FeedInputError(f"{item}: not an http(s) URL and no such file")
        head = path.read_bytes()[:2048].lstrip().lower()
        if path.suffix.lower() == ".opml" or b"<opml" in head:
            urls.extend(_opml_urls(path))
        else:
            urls.append(server.add_file(f"/files/{len(urls)}-{path.name}", path, "application/rss+xml"))
            local = True
    return urls, local


def _settings(data_dir: Path, allow_loopback: bool) -> dict[str, Any]:
    bus = BusSettings(kind="memory")
    net = NetSettings(allowed_networks=LOOPBACK if allow_loopback else ())

    def db(name: str) -> DatabaseSettings:
        return DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{data_dir / (name + '.db')}"))

    secret_file = data_dir / "signing-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    from podbrief_clustering.settings import ClusteringSettings
    from podbrief_delivery.settings import DeliverySettings
    from podbrief_extraction.settings import ChunkingSettings, ExtractionSettings
    from podbrief_ingest.settings import IngestSettings
    from podbrief_transcription.settings import TranscriptionSettings

    common: dict[str, Any] = {"bus": bus, "data_dir": data_dir}
    return {
        "ingest": IngestSettings(**common, db=db("ingest"), net=net, poll_enabled=False),
        "transcription": TranscriptionSettings(
            **common, db=db("transcription"), net=net, models_dir=data_dir / "models"
        ),
        # The 135M model keeps at most one or two claims per window: short windows give it more chances.
        "extraction": ExtractionSettings(
            **common, db=db("extraction"), chunking=ChunkingSettings(window_s=30.0, overlap_s=5.0)
        ),
        "clustering": ClusteringSettings(
            **common, db=db("clustering"), qdrant=QdrantSettings(path=data_dir / "qdrant"), recluster_interval_s=0
        ),
        "delivery": DeliverySettings(
            **common, db=db("delivery"), signing_secret=SecretStr(secret_file.read_text()), scheduler_enabled=False
        ),
    }


def _create_app(name: str, settings: Any, transport: MemoryTransport) -> FastAPI:
    """The service's own app (chassis, consumer, loops), on the shared in-process bus."""
    from podbrief_clustering.app import create_app as clustering
    from podbrief_delivery.app import create_app as delivery
    from podbrief_extraction.app import create_app as extraction
    from podbrief_ingest.app import create_app as ingest
    from podbrief_transcription.app import create_app as transcription

    factories: dict[str, Callable[..., FastAPI]] = {
        "ingest": ingest,
        "transcription": transcription,
        "extraction": extraction,
        "clustering": clustering,
        "delivery": delivery,
    }
    return factories[name](settings, transport=transport)


def _pending(transport: MemoryTransport) -> dict[str, tuple[int, int]]:
    """(handled, total) per stage, from the bus itself: what each consumer group has committed."""
    out = {}
    for group, topic, _ in STAGES:
        total = sum(transport.end_offsets(topic))
        committed = sum(off for (t, _p), off in transport.committed(group).items() if t == topic)
        out[group] = (committed, total)
    return out


async def _wait_idle(transport: MemoryTransport, progress: Progress, tasks: dict[str, Any], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while True:
        state = _pending(transport)
        for group, (done, total) in state.items():
            progress.update(tasks[group], completed=done, total=max(total, 1) if total else None)
        busy = any(done < total for done, total in state.values())
        quiet = 0 if busy else quiet + 1
        if quiet >= 4:  # idle for two seconds: nothing in flight anywhere
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"pipeline still busy after {timeout_s:.0f}s: {state}")
        await asyncio.sleep(0.5)


def _text_part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


async def _run(
    feeds: Sequence[str], data_dir: Path, email: str, interests: str, timeout_s: float, console: Console
) -> int:
    try:
        server = LocalHost(port=DEMO_PORT if not feeds else 0).start()
    except OSError:  # the demo port is taken: any port works, only the demo's episode ids change
        server = LocalHost().start()
    try:
        urls, local = resolve_feeds(feeds, server)
    except FeedInputError as exc:
        console.print(f"[red]error:[/] {exc}")
        server.stop()
        return 2
    settings = _settings(data_dir, allow_loopback=local or not feeds)
    transport = MemoryTransport(partitions=4)
    await transport.start()
    apps = {name: _create_app(name, cfg, transport) for name, cfg in settings.items()}
    started = time.monotonic()
    try:
        async with contextlib.AsyncExitStack() as stack:
            with console.status("starting the services (loading Whisper, MiniLM and the LLM)…"):
                for name, app in apps.items():
                    await stack.enter_async_context(app.router.lifespan_context(app))
                    console.print(f"  [green]✓[/] {name}")
            ingest = apps["ingest"].state.deps
            from podbrief_ingest.app import poll_all_now

            with console.status(f"adding {len(urls)} feed(s)…"):
                for url in urls:
                    try:
                        await ingest.crawler.add_feed(url)
                    except Exception as exc:  # one bad feed must not stop the others
                        console.print(f"  [yellow]![/] {url}: {exc}")
                report = await poll_all_now(ingest)
            found = sum(transport.end_offsets(topics.EPISODE_DISCOVERED))
            console.print(f"  {len(urls)} feed(s), {report.failed} failed; {found} new episode(s) to process")

            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<22}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                tasks = {group: progress.add_task(label, total=None) for group, _, label in STAGES}
                await _wait_idle(transport, progress, tasks, timeout_s)

            return await _deliver(apps["delivery"].state.deps, data_dir, email, interests, console, started)
    finally:
        await transport.stop()
        server.stop()


async def _deliver(deps: Any, data_dir: Path, email: str, interests: str, console: Console, started: float) -> int:
    """Sign the demo subscriber up (or update them), compose and "send" today's brief into .eml and .html."""
    from podbrief_delivery import subscribers
    from podbrief_delivery.composing import brief_files
    from podbrief_delivery.schedule import local_day
    from podbrief_delivery.sending import deliver_due

    mailer = FileMailer(data_dir / "briefs")
    repo, metrics, embedder, settings = deps.repo, deps.metrics, deps.embedder, deps.settings
    sub = await repo.subscriber_by_email(subscribers.normalise_email(email))
    if sub is None:
        profile = subscribers.SignupProfile(interests=interests)
        sub = await subscribers.add_active_subscriber(
            email, profile, repo=repo, embedder=embedder, settings=settings, metrics=metrics
        )
    else:
        if sub.status not in ("active", "paused"):  # left pending or unsubscribed by an earlier run
            sub, _key = await subscribers.confirm(sub.id, repo=repo, metrics=metrics)
        changes = {"interests": interests, "status": "active"}
        sub = await subscribers.update_profile(sub, changes, repo=repo, embedder=embedder, metrics=metrics)
    # Delivery's own sending, with the brief "sent" into .eml files instead of by SMTP.
    report = await deliver_due(
        repo=repo,
        embedder=embedder,
        mailer=mailer,
        renderer=deps.renderer,
        links=deps.links,
        publish=deps.publish,
        settings=settings,
        metrics=metrics,
        force=True,
        only=[sub.id],
    )
    day = local_day(sub, utcnow())[0]
    stored = await brief_files(
        sub, day, repo=repo, links=deps.links, renderer=deps.renderer, sender=settings.smtp.from_address
    )
    if stored is None:
        console.print(f"[red]no brief was composed[/]: {report.as_dict()}")
        return 1
    page, eml = stored
    out = data_dir / "briefs"
    out.mkdir(parents=True, exist_ok=True)
    html_path, eml_path = out / f"brief-{day.isoformat()}.html", out / f"brief-{day.isoformat()}.eml"
    await asyncio.to_thread(html_path.write_text, page)
    await asyncio.to_thread(eml_path.write_bytes, eml)
    from email import message_from_bytes

    message = message_from_bytes(eml, policy=policy.default)
    assert isinstance(message, EmailMessage)
    if report.sent == 0 and report.already_claimed:
        console.print("[dim]today's brief was already composed in an earlier run; showing it again[/]")
    console.print(Panel(_text_part(message, "plain").strip(), title=str(message["Subject"]), expand=False))
    console.print(f"brief written to [bold]{html_path}[/] and [bold]{eml_path}[/] in {time.monotonic() - started:.0f}s")
    return 0


def run_embedded(*, feeds: Sequence[str], data_dir: Path, email: str, interests: str, timeout_s: float) -> int:
    console = Console(stderr=True)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The terminal shows progress; the services' JSON logs go to a file.
    plog.configure("INFO", service="embedded")
    handler = logging.FileHandler(data_dir / "podbrief.log")
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().handlers[:] = [handler]
    try:
        return asyncio.run(_run(feeds, data_dir, email, interests, timeout_s, console))
    except TimeoutError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 1
    except ConfigurationError as exc:
        # Settings or stores that cannot work (an embedding model the vector store was not built with, a store
        # in use by another process or still in an old format): say what and how, without a traceback.
        console.print(f"[red]error:[/] {exc}")
        return 2
