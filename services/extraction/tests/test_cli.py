"""`podbrief extract`: bad input exits cleanly; a configured endpoint is used as is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from podbrief.events import Segment, Transcript
from podbrief_extraction.cli import register
from podbrief_testing.llm import LoopbackOpenAI, ScriptedModel
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

LINE = "Our tests show the new solid-state cells charge to eighty percent in twelve minutes."

TEXT = "Battery Talk's guest says solid-state cells charge to 80% in 12 minutes in the company's tests."


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    return app


@pytest.fixture
def openai_server() -> Iterator[tuple[str, ScriptedModel]]:
    """A scripted model on loopback (the CLI runs its own client): its URL, and the model with its calls."""
    model = ScriptedModel(write=lambda _q, _b: TEXT)
    server = LoopbackOpenAI(responder=model)
    yield server.base_url, model
    server.stop()


def write_transcript(tmp_path: Path) -> Path:
    t = Transcript(text=LINE, language="en", duration_s=9.0, segments=(Segment(start_s=1.0, end_s=8.0, text=LINE),))
    path = tmp_path / "episode.json"
    path.write_text(json.dumps(t.model_dump(mode="json")))
    return path


def test_prints_one_json_insight_per_line(tmp_path: Path, openai_server: tuple[str, ScriptedModel]) -> None:
    url, model = openai_server
    result = CliRunner().invoke(
        cli(),
        [
            "extract",
            str(write_transcript(tmp_path)),
            "--base-url",
            url,
            "--show",
            "Battery Talk",
            "--title",
            "Solid state",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    assert lines[0]["quote"] == LINE and lines[0]["text"] == TEXT
    assert lines[0]["start_s"] == 1.0
    assert "Podcast: Battery Talk" in model.calls["write"][0]["messages"][1]["content"]
    assert "Episode: Battery Talk: Solid state" in model.calls["rate"][0]["messages"][1]["content"]


def test_publisher_transcripts_are_read_with_their_speakers(
    tmp_path: Path, openai_server: tuple[str, ScriptedModel]
) -> None:
    url, model = openai_server
    path = tmp_path / "episode.vtt"
    path.write_text(f"WEBVTT\n\n00:01.000 --> 00:08.000\n<v Dr Ana Lima>{LINE}\n")
    result = CliRunner().invoke(
        cli(),
        ["extract", str(path), "--base-url", url, "--show", "Battery Talk", "--person", "Dr Ana Lima:guest"],
    )
    assert result.exit_code == 0, result.output
    [insight] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert insight["speaker"] == "Dr Ana Lima" and insight["quote"] == LINE
    # The call that writes the insight names the feed's people.
    [write] = model.calls["write"]
    assert "People: Dr Ana Lima (guest)" in write["messages"][1]["content"]


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "no such file"),
        ("{not json", "cannot read"),
        ('{"segments": "nope"}', "not a podbrief transcript"),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(cli(), ["extract", str(path), "--base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_unreachable_endpoint_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXTRACTION_LLM__MAX_RETRIES", "0")
    result = CliRunner().invoke(
        cli(), ["extract", str(write_transcript(tmp_path)), "--base-url", "http://127.0.0.1:9/v1"]
    )
    assert result.exit_code == 1 and "unreachable" in result.output
