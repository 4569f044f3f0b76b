"""`podbrief transcribe`: the transcript on stdout (JSON `podbrief extract` reads, VTT, SRT), progress and
errors on stderr, non-zero exits without tracebacks."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from podbrief.events.models import Transcript
from podbrief.transcripts import parse_publisher_transcript
from podbrief_testing import LoopbackServer
from podbrief_testing.transcription import check_transcript
from podbrief_transcription.cli import register
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

# The session's cached model is reused when the CLI asks for the same configuration.
COMMON = ["--threads", "2", "--device", "cpu", "--compute-type", "int8"]


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_json_on_stdout(cli: typer.Typer, audio_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["transcribe", str(audio_dir / "jfk.flac"), *COMMON])
    assert result.exit_code == 0, result.stderr
    data = orjson.loads(result.stdout)
    t = Transcript.model_validate(data)
    assert data == t.model_dump(mode="json")
    check_transcript(t.text)
    assert t.language == "en" and t.duration_s == pytest.approx(11.0, abs=0.05)
    assert {"start_s", "end_s", "text", "words"} <= set(data["segments"][0])


def test_vtt_and_srt_from_a_url(cli: typer.Typer, audio_dir: Path, loopback: LoopbackServer) -> None:
    url = loopback.add("/jfk.flac", (audio_dir / "jfk.flac").read_bytes(), "audio/flac")
    vtt = CliRunner().invoke(
        cli, ["transcribe", url, "--format", "vtt", "--allow-network", "127.0.0.1", "--no-progress", *COMMON]
    )
    assert vtt.exit_code == 0, vtt.stderr
    assert vtt.stdout.startswith("WEBVTT")
    check_transcript(parse_publisher_transcript(vtt.stdout.encode(), "text/vtt").text)
    srt = CliRunner().invoke(cli, ["transcribe", str(audio_dir / "jfk.flac"), "-f", "srt", *COMMON])
    assert srt.exit_code == 0 and srt.stdout.startswith("1\n00:00:00,000 --> ")


def test_bad_input_exits_non_zero_with_a_reason(cli: typer.Typer, tmp_path: Path, loopback: LoopbackServer) -> None:
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio" * 100)
    result = CliRunner().invoke(cli, ["transcribe", str(bad), *COMMON])
    assert result.exit_code == 2 and result.stdout == ""
    assert "corrupt_audio" in result.stderr and "Traceback" not in result.stderr
    missing = CliRunner().invoke(cli, ["transcribe", str(tmp_path / "nope.mp3")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    # Loopback is refused by the SSRF guard unless allowed.
    url = loopback.add("/a.mp3", b"x", "audio/mpeg")
    blocked = CliRunner().invoke(cli, ["transcribe", url, *COMMON])
    assert blocked.exit_code == 2 and "ssrf_blocked" in blocked.stderr
    fmt = CliRunner().invoke(cli, ["transcribe", str(bad), "--format", "txt"])
    assert fmt.exit_code == 2
