"""#21 (3): feed- and transcript-supplied text reaches the terminal as plain text. A title written as Rich markup
(`[link=...]...[/link]`) prints as those characters, never as a link, and no escape sequence, bell or bidi
override from a feed, a transcript or an error message reaches the terminal, in `podbrief run`, `podbrief dlq`
and the services' CLIs."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path

import pytest
from podbrief.bus import Bus, MemoryTransport, Subscription
from podbrief.bus.memory_store import MemoryStore
from podbrief.errors import PermanentError
from podbrief.events import BriefDelivered
from podbrief.settings import BusSettings
from podbrief.terminal import plain, safe
from podbrief_testing import LoopbackServer
from podbrief_testing.bus import numbered_event
from rich.console import Console
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

MARKUP = "[link=https://evil.example/steal]Click to win[/link] [blink]now[/blink]"
# ESC ] 8 (a hyperlink), ESC [ 2 J (clear the screen), BEL, a C1 CSI, a bidi override and a zero-width space.
CONTROLS = "\x1b]8;;https://evil.example\x07x\x1b]8;;\x07 \x1b[2J\x07 \x9b31m \u202egnp.exe \u200b"
HOSTILE = f"{MARKUP} {CONTROLS}"


def assert_inert(out: str) -> None:
    """What a terminal would receive holds the markup literally and none of the hostile controls."""
    assert "[link=https://evil.example/steal]Click to win[/link]" in out, out
    assert "[blink]now[/blink]" in out
    assert "\x1b]8;" not in out  # no OSC 8 hyperlink, from the feed or made by Rich out of markup
    assert "evil.example\x07" not in out and "\x07" not in out
    assert "\x1b[2J" not in out and "\x9b" not in out
    assert "\u202e" not in out and "\u200b" not in out


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    # A real terminal as Rich sees one: styles and hyperlinks would be emitted as escape sequences.
    return Console(file=buf, force_terminal=True, color_system="truecolor", width=400), buf


def test_plain_and_safe() -> None:
    console, buf = terminal()
    console.print(plain(HOSTILE))
    assert_inert(buf.getvalue())
    assert safe("a\r\nb\rc\td") == "a\nb\nc\td"


def test_run_report_prints_feed_and_transcript_text_literally(tmp_path: Path) -> None:
    from podbrief_run.outcomes import BriefOutcome, BriefSource, EpisodeOutcome, FeedOutcome, RunReport
    from podbrief_run.report import print_report

    episode = uuid.uuid4()
    report = RunReport(
        feeds=[
            FeedOutcome(HOSTILE, "https://feeds.example/x.xml", "polled", title=HOSTILE, new=2),
            FeedOutcome("https://b.example/f", "https://b.example/f", "failed", reason="not_a_feed", message=HOSTILE),
        ],
        episodes=[
            EpisodeOutcome(
                episode, None, HOSTILE, HOSTILE, "done", transcript_source="audio", duration_s=61, insights=1
            ),
            EpisodeOutcome(
                uuid.uuid4(), None, HOSTILE, HOSTILE, "failed", stage="transcription", reason="dns", message=HOSTILE
            ),
            EpisodeOutcome(
                uuid.uuid4(), None, "", HOSTILE, "rejected", stage="ingest", reason="no_enclosure", message=HOSTILE
            ),
        ],
        brief=BriefOutcome(
            "composed",
            kind="full",
            subject=HOSTILE,
            text=f"1. {HOSTILE}\n   \u201c{HOSTILE}\u201d",
            sources=[BriefSource(episode, HOSTILE, HOSTILE, 1, True)],
        ),
    )
    console, buf = terminal()
    print_report(console, report, tmp_path)
    out = buf.getvalue()
    assert_inert(out)
    assert out.count("Click to win") >= 8  # every place it appears: feeds, episodes, errors, the brief


def test_transcribe_prints_a_server_supplied_error_literally(loopback: LoopbackServer) -> None:
    """The server chooses the Content-Type that the error message quotes; before the fix the CLI printed the
    message as Rich markup, so `[link=...]` vanished into a hyperlink."""
    from podbrief_cli.cli import _register_service_commands, app

    _register_service_commands()
    url = loopback.add("/episode.mp3", b"not audio", content_type=f"text/{MARKUP}")
    result = CliRunner().invoke(app, ["transcribe", url, "--allow-network", "127.0.0.0/8", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "not audio or video" in result.output
    # The service lowercases the type it quotes.
    assert "[link=https://evil.example/steal]click to win[/link] [blink]now[/blink]" in result.output
    assert "\x1b" not in result.output


def test_extract_prints_a_hostile_file_name_and_its_errors_literally(tmp_path: Path) -> None:
    """`podbrief extract` names the file in its errors, and quotes what the publisher's transcript holds."""
    from podbrief_cli.cli import _register_service_commands, app

    _register_service_commands()
    name = tmp_path / "episode \x1b[2J\x07\u202e.json"
    name.write_text("{ not json")
    vtt = tmp_path / "episode.vtt"
    vtt.write_text(f"not a WebVTT file {CONTROLS}")
    for path in (name, vtt):
        result = CliRunner().invoke(app, ["extract", str(path)])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
        assert "\x1b" not in result.output and "\x07" not in result.output and "\u202e" not in result.output


def test_cluster_table_prints_insight_text_literally(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`podbrief cluster`'s table holds insight texts and cluster labels, both drawn from transcripts."""
    from types import SimpleNamespace

    monkeypatch.setenv("COLUMNS", "400")  # wide enough for every cell on one line

    from podbrief_clustering.cli import Line, _print_table

    cluster, insight = uuid.uuid4(), uuid.uuid4()
    _print_table(
        [Line(1, HOSTILE, "show")],
        [SimpleNamespace(insight_id=insight)],  # type: ignore[list-item]
        {insight: SimpleNamespace(cluster_id=cluster, duplicate_of=None)},
        {cluster: SimpleNamespace(label=HOSTILE)},
        {insight: 1},
    )
    out = capsys.readouterr().out
    assert out.count("[link=https://evil.example/steal]") == 2, out  # the label and the text
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out


def test_dlq_list_prints_dead_letters_literally(tmp_path: Path) -> None:
    """A dead letter's key and error message come from the message and the failure (a feed's words quoted in
    an exception): `podbrief dlq list` and `show` print them as plain text."""
    topic = "podbrief.episode.discovered.v1"

    async def dead_letter() -> None:
        transport = MemoryTransport(store=MemoryStore(tmp_path / "bus.sqlite"))
        bus = Bus(transport, BusSettings(max_attempts=1))
        await bus.start()

        async def handler(_e: BriefDelivered) -> None:
            raise PermanentError(HOSTILE, reason="not_a_feed")

        await transport.ensure_topics([topic])
        await bus.publish(numbered_event(HOSTILE, 0), topic=topic)
        consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group="transcription")
        task = asyncio.create_task(consumer.run())
        deadline = asyncio.get_running_loop().time() + 10
        while not transport.records(topic + ".dlq"):
            assert asyncio.get_running_loop().time() < deadline, "not dead-lettered in time"
            await asyncio.sleep(0.02)
        consumer.stop()
        await task
        await bus.stop()

    asyncio.run(dead_letter())
    from podbrief_cli.cli import app
    from podbrief_cli.dlq import register

    register(app)
    listed = CliRunner().invoke(app, ["dlq", "list", "episode.discovered", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "not_a_feed" in listed.output
    assert "\x1b" not in listed.output and "\u202e" not in listed.output
    as_json = CliRunner().invoke(app, ["dlq", "list", "episode.discovered", "--json", "--data-dir", str(tmp_path)])
    [line] = as_json.output.splitlines()
    assert "\x1b" not in line  # JSON escapes every control character
    letter_id = json.loads(line)["id"]
    shown = CliRunner().invoke(app, ["dlq", "show", "episode.discovered", letter_id, "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "[link=https://evil.example/steal]" in shown.output
    assert "\x1b" not in shown.output and "\x07" not in shown.output and "\u202e" not in shown.output
