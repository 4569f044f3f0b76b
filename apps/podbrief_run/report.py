"""The end of `podbrief run` on the terminal: a table of feeds, a table of episodes, what the brief drew on,
and why the exit code is what it is. Everything a feed, a transcript or an error message supplies is printed as
plain text (podbrief.terminal), never as Rich markup."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from podbrief.reasons import meaning
from podbrief.terminal import one_line, plain
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from podbrief_run.layout import STAGES
from podbrief_run.outcomes import BriefOutcome, EpisodeOutcome, FeedOutcome, RunReport

TITLE_CHARS = 70
MESSAGE_CHARS = 160


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _reason(code: str | None, message: str | None, style: str = "red") -> Text:
    """`code` (what it means): the message, all of it plain text."""
    out = Text()
    if code:
        out.append(code, style=f"bold {style}")
        out.append(f" ({meaning(code)})", style="dim")
    if message:
        out.append(": " if code else "")
        out.append_text(one_line(message, MESSAGE_CHARS))
    return out


def feed_table(feeds: list[FeedOutcome]) -> Table:
    table = Table(title="Feeds", title_justify="left", show_lines=False, expand=False)
    table.add_column("feed", overflow="fold", max_width=60)
    table.add_column("outcome", overflow="fold")
    for f in feeds:
        name = Text()
        if f.title:
            name.append_text(one_line(f.title, TITLE_CHARS, style="bold"))
            name.append("\n")
        name.append_text(one_line(f.label, 200, style="dim"))
        if f.stored:
            name.append(" (stored by an earlier run)", style="dim")
        table.add_row(name, _feed_outcome(f))
    return table


def _feed_outcome(f: FeedOutcome) -> Text:
    if f.state == "polled":
        parts = [f"{f.new} new episode{'s' if f.new != 1 else ''}"]
        if f.backlog:
            parts.append(f"{f.backlog} older left in the backlog (a feed's first poll takes the newest few)")
        if f.rejected:
            parts.append(f"{f.rejected} rejected (below)")
        return Text("polled: " + "; ".join(parts), style="green")
    if f.state == "not_modified":
        return Text("not modified since the last poll", style="green")
    if f.state == "skipped":
        return Text("skipped: another process is polling it", style="yellow")
    out = Text("blocked: " if f.state == "blocked" else "failed: ", style="red")
    out.append_text(_reason(f.reason, f.message))
    return out


def episode_table(episodes: list[EpisodeOutcome]) -> Table:
    earlier = sum(1 for e in episodes if e.origin != "new")
    title = f"Episodes ({len(episodes) - earlier} new"
    title += f", {earlier} left by an earlier run or replayed)" if earlier else ")"
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("episode", overflow="fold", max_width=50)
    table.add_column("transcript", no_wrap=True)
    table.add_column("insights", overflow="fold", max_width=40)
    table.add_column("outcome", overflow="fold")
    for e in episodes:
        name = Text()
        if e.show:
            name.append_text(one_line(e.show, 40, style="dim"))
            name.append("\n")
        name.append_text(one_line(e.title, TITLE_CHARS))
        if e.origin == "earlier":
            name.append(" (left by an earlier run)", style="dim")
        elif e.origin == "replayed":
            name.append(" (replayed dead letter)", style="dim")
        transcript = (
            Text(f"{e.transcript_source}, {duration(e.duration_s)}") if e.transcript_source else Text("—", style="dim")
        )
        table.add_row(name, transcript, _insights(e), _episode_outcome(e))
    return table


def _insights(e: EpisodeOutcome) -> Text:
    if e.insights is None:
        return Text("—", style="dim")
    out = Text(f"{e.insights} kept")
    if e.dropped:
        dropped = ", ".join(code if n == 1 else f"{n}× {code}" for code, n in Counter(e.dropped).most_common())
        out.append(f"\ndropped {sum(e.dropped.values())}: {dropped}", style="dim")
    return out


def _episode_outcome(e: EpisodeOutcome) -> Text:
    if e.state == "done":
        if e.in_brief:
            return Text(f"in the brief ({e.in_brief} insight{'s' if e.in_brief != 1 else ''})", style="bold green")
        if e.insights == 0:
            return Text("processed; nothing worth keeping", style="yellow")
        return Text("processed; candidates for later briefs", style="green")
    if e.state == "rejected":
        out = Text("rejected by ingest: ", style="red")
        out.append_text(_reason(e.reason, e.message))
        return out
    if e.state == "failed":
        out = Text(f"failed at {e.stage}: ", style="red")
        out.append_text(_reason(e.reason, e.message))
        tries = f" after {e.attempts} attempt{'s' if e.attempts != 1 else ''}" if e.attempts else ""
        out.append(f" (dead-lettered{tries})", style="dim")
        return out
    return Text(f"unfinished: still at {e.stage or 'the start'} when the run stopped", style="yellow")


def brief_sources(brief: BriefOutcome) -> Text:
    out = Text()
    if not brief.sources:
        return out
    out.append("The brief drew its insights from:\n", style="bold")
    for s in brief.sources:
        out.append("  • ")
        out.append_text(one_line(s.show, 40, style="dim"))
        out.append(" — ")
        out.append_text(one_line(s.title, TITLE_CHARS))
        out.append(f" ({s.insights} insight{'s' if s.insights != 1 else ''})")
        if not s.from_this_run:
            out.append("  episode processed by an earlier run", style="dim")
        out.append("\n")
    return out


def brief_panel(brief: BriefOutcome) -> Panel:
    """The brief's plain-text version, boxed; its subject as the title. Both are plain text."""
    title = plain(brief.subject)
    if brief.state == "earlier" and brief.composed_at is not None:
        title.append(f"  (composed earlier, at {brief.composed_at:%H:%M} UTC)", style="dim")
    return Panel(plain(brief.text.strip()), title=title, expand=False)


def dlq_hint(episodes: list[EpisodeOutcome], data_dir: Path) -> Text | None:
    """How to replay what failed, once its cause is fixed."""
    stages = {e.stage for e in episodes if e.state == "failed"}
    topics = [s.topic for s in STAGES if s.service in stages]
    if not topics:
        return None
    out = Text("The failed episodes are kept as dead letters; once the cause is fixed, replay them with\n", style="dim")
    for topic in topics:
        out.append(f"  podbrief dlq replay {topic} --all --data-dir {data_dir}\n", style="dim")
    out.append("and run again; `podbrief dlq list --data-dir ...` shows them.", style="dim")
    return out


def print_report(console: Console, report: RunReport, data_dir: Path) -> None:
    if report.feeds:
        console.print(feed_table(report.feeds))
    if report.episodes:
        console.print(episode_table(report.episodes))
    elif report.feeds:
        console.print(Text("No new episodes in these feeds.", style="dim"))
    hint = dlq_hint(report.episodes, data_dir)
    if hint is not None:
        console.print(hint)
    b = report.brief
    if b.state == "none":
        console.print(Text("No brief was composed: ", style="red").append_text(plain(b.detail or "")))
    else:
        if b.state == "earlier":
            when = f" at {b.composed_at:%H:%M} UTC" if b.composed_at else ""
            missed = " and this run's episodes are not in it" if report.processed else ""
            console.print(
                Text(
                    f"Today's brief was already composed{when} by an earlier run, so it is not composed again{missed}. "
                    "Run with --force to compose it again from the current candidates.",
                    style="yellow",
                )
            )
        console.print(brief_panel(b))
        if b.kind == "note":
            why = {0: ": these feeds have no insights yet", None: ""}.get(
                b.candidates, ": nothing matched the interests closely enough"
            )
            console.print(Text(f"The brief is a note, not insights{why}.", style="yellow"))
        console.print(brief_sources(b))
        if b.html is not None and b.eml is not None:
            written = Text("brief written to ").append(str(b.html), style="bold").append(" and ")
            console.print(written.append(str(b.eml), style="bold"))
    code = report.exit_code()
    if code:
        console.print(
            Text(
                "exit 1: none of this run's episodes could be processed, and no brief drew on its feeds",
                style="bold red",
            )
        )


__all__ = ["print_report"]
