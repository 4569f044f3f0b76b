"""`podbrief run` tells the truth: every feed and episode with its outcome and reason, only the given feeds
polled, an exit code that says whether anything came of the run. The five services run for real (in-process
bus, SQLite); Whisper is not warmed up and the LLM endpoint is unreachable, since no episode gets that far."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest
from podbrief_cli.cli import app
from podbrief_cli.dlq import register
from podbrief_cli.status import embedded_status
from podbrief_run.layout import DataDir
from podbrief_run.options import RunOptions
from podbrief_run.runner import run_embedded
from rich.console import Console
from typer.testing import CliRunner

pytestmark = pytest.mark.slow
register(app)

OVERRIDES = {
    "transcription": {"warmup": False},
    "extraction": {"llm": {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0}},
}


def feed(title: str, items: list[tuple[str, str, str]]) -> str:
    """An RSS feed; items are (title, enclosure URL, enclosure type)."""
    body = "".join(
        f"<item><title>{t}</title><guid>{title}-{n}</guid><pubDate>Mon, 0{n + 1} Dec 2025 10:00:00 GMT</pubDate>"
        f'<enclosure url="{url}" type="{kind}" length="1000"/></item>'
        for n, (t, url, kind) in enumerate(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>{body}</channel></rss>'


def run(tmp_path: Path, *feeds: Path, **options: object) -> tuple[int, str]:
    out = io.StringIO()
    console = Console(file=out, width=240, force_terminal=False, color_system=None)
    opts = RunOptions(
        feeds=[str(f) for f in feeds],
        data_dir=tmp_path / "data",
        timeout_s=120,
        overrides=OVERRIDES,
        **options,  # type: ignore[arg-type]
    )
    code = run_embedded(opts, console=console)
    return code, out.getvalue()


def flat(out: str) -> str:
    """The output as one line of words, table borders dropped (cells wrap across lines)."""
    return " ".join(out.translate({ord(c): " " for c in "│┃"}).split())


def row_of(out: str, title: str) -> str:
    """The table row (its lines joined) that names `title`: the show's line above it, the title's line."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if title in line)
    return " ".join(" ".join(lines[at - 1 : at + 2]).replace("│", " ").split())


def polls(data: Path, name: str) -> int:
    with sqlite3.connect(data / "ingest.db") as conn:
        rows = conn.execute("SELECT polls FROM ingest_feeds WHERE source_url LIKE ?", (f"%/{name}",)).fetchall()
    assert len(rows) == 1, rows
    return int(rows[0][0])


def test_unreachable_enclosures_are_reported_with_their_reasons_and_the_run_fails(tmp_path: Path) -> None:
    a = tmp_path / "a.xml"
    a.write_text(
        feed(
            "Unreachable Show",
            [
                ("Episode on a host that does not exist", "http://audio.podbrief-test.invalid/one.mp3", "audio/mpeg"),
                ("Episode on a closed port", "http://127.0.0.1:9/two.mp3", "audio/mpeg"),
                ("Episode that is a PDF", "http://127.0.0.1:9/three.pdf", "application/pdf"),
            ],
        )
    )
    code, out = run(tmp_path, a)
    assert code == 1, out
    text = flat(out)
    assert f"data directory {tmp_path / 'data'}" in text
    assert "Unreachable Show" in text and "polled: 2 new episodes" in text
    for title, reason in (
        ("Episode on a host that does not exist", "failed at transcription: dns"),
        ("Episode on a closed port", "failed at transcription: connect"),
        ("Episode that is a PDF", "rejected by ingest: enclosure_not_audio"),
    ):
        assert reason in row_of(out, title), f"{title!r} without {reason!r}:\n{out}"
    assert re.search(r"dead-lettered after \d+ attempts", text)
    assert "podbrief dlq replay podbrief.episode.discovered.v1" in text
    assert "exit 1" in text

    # The run's timeline: its milestones in order, and each of its episodes with the stages it reached.
    timeline = json.loads(DataDir(tmp_path / "data").timeline.read_text())
    marks = timeline["marks"]
    order = [f"ready:{s}" for s in ("ingest", "transcription", "extraction", "clustering", "delivery")]
    order += ["poll", "polled", "idle", "brief"]
    assert list(marks) == order and [marks[m] for m in order] == sorted(marks.values())
    assert len(timeline["episodes"]) == 2  # the PDF was rejected before the bus
    for stages in timeline["episodes"].values():
        assert set(stages) == {"discovered", "in_brief"} and marks["poll"] <= stages["discovered"] <= marks["polled"]
        assert stages["in_brief"] == 0  # nothing of theirs reached the brief
    # With the services' counters at the poll and at the brief: the run's handler attempts are their difference.
    assert set(timeline["metrics"]) == {"poll", "brief"}
    services = {"ingest", "transcription", "extraction", "clustering", "delivery"}
    assert all(set(m) == services for m in timeline["metrics"].values())
    attempts = 'podbrief_transcription_handler_seconds_count{topic="podbrief.episode.discovered.v1"}'
    before, after = (timeline["metrics"][m]["transcription"].get(attempts, 0.0) for m in ("poll", "brief"))
    assert after - before >= 2  # both episodes tried at least once (retries before the dead letter add more)

    # `podbrief status` on the data directory says the same, by reason.
    statuses, note = asyncio.run(embedded_status(DataDir(tmp_path / "data")))
    by = {s.service: s for s in statuses}
    assert note is None
    assert by["ingest"].stage.episodes["discovered"] == 2
    assert by["ingest"].stage.failures == {"episodes": {"enclosure_not_audio": 1}}
    assert by["transcription"].dead_letters == {"podbrief.episode.discovered.v1": {"dns": 1, "connect": 1}}
    assert by["transcription"].consumer is not None
    assert by["transcription"].consumer.lag == {"podbrief.episode.discovered.v1": 0}

    # The dead letters wait in the data directory; replayed, the next run takes them up (and says so).
    cli = CliRunner()
    listed = cli.invoke(app, ["dlq", "list", "episode.discovered", "--data-dir", str(tmp_path / "data")])
    assert listed.exit_code == 0 and "2 dead letter(s)" in listed.output, listed.output
    replayed = cli.invoke(app, ["dlq", "replay", "episode.discovered", "--all", "--data-dir", str(tmp_path / "data")])
    assert "replayed 2 dead letter(s)" in replayed.output, replayed.output
    code, out = run(tmp_path, a)
    assert code == 1, out
    assert flat(out).count("(replayed") == 2
    assert "failed at transcription: dns" in row_of(out, "Episode on a host that does not exist")


def test_a_second_run_on_another_feed_does_not_poll_the_first(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text(feed("First Show", [("First episode", "http://127.0.0.1:9/a.mp3", "application/pdf")]))
    b.write_text(feed("Second Show", [("Second episode", "http://127.0.0.1:9/b.mp3", "application/pdf")]))
    run(tmp_path, a)
    assert polls(tmp_path / "data", "a.xml") == 1

    _, out = run(tmp_path, b)
    assert polls(tmp_path / "data", "a.xml") == 1  # not polled again
    assert "First Show" not in out and "First episode" not in out
    assert "Second Show" in out
    assert "1 other feed(s) stored by earlier runs are not polled" in flat(out)

    _, out = run(tmp_path, b, all_feeds=True)  # asked for: polled, and its failure said (not served now)
    assert polls(tmp_path / "data", "a.xml") == 2
    text = flat(out)
    assert "First Show" in text and "stored by an earlier run" in text and "failed: http_404" in text

    _, out = run(tmp_path, b, fresh=True)
    assert "started afresh" in out
    with sqlite3.connect(tmp_path / "data" / "ingest.db") as conn:
        assert conn.execute("SELECT count(*) FROM ingest_feeds").fetchone() == (1,)
