"""`podbrief extract TRANSCRIPT.json`: insights from a transcript file, one JSON object per line on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer
from podbrief.terminal import error_text, plain


def register(app: typer.Typer) -> None:
    app.command(name="extract")(extract)


def extract(
    transcript_file: Annotated[
        Path,
        typer.Argument(help="a transcript as `podbrief transcribe --format json` writes it", metavar="TRANSCRIPT.json"),
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
) -> None:
    """Extract grounded insights from a transcript; print one JSON insight per line (progress on stderr)."""
    from podbrief.events import Transcript
    from podbrief.events.ids import NAMESPACE
    from pydantic import ValidationError

    err = typer.echo
    try:
        raw = json.loads(transcript_file.read_text(encoding="utf-8"))
        transcript = Transcript.model_validate(raw)
    except FileNotFoundError:
        err(f"error: no such file: {transcript_file}", err=True)
        raise typer.Exit(2) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        err(f"error: cannot read {transcript_file} as JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        err(
            f"error: {transcript_file} is not a podbrief transcript ({exc.error_count()} problems, first: "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']})",
            err=True,
        )
        raise typer.Exit(2) from None
    try:
        ep = uuid.UUID(episode_id) if episode_id else uuid.uuid5(NAMESPACE, "file:" + transcript_file.name)
    except ValueError:
        err(f"error: --episode-id {episode_id!r} is not a UUID", err=True)
        raise typer.Exit(2) from None
    code = asyncio.run(
        _run(transcript, ep, show=show, title=title or transcript_file.stem, base_url=base_url, model=model)
    )
    raise typer.Exit(code)


async def _run(
    transcript: object,
    episode_id: uuid.UUID,
    *,
    show: str,
    title: str,
    base_url: str | None,
    model: str | None,
) -> int:
    from podbrief.errors import PipelineError
    from podbrief.events import Transcript
    from podbrief_extraction.adapters.llm import LLMClient
    from podbrief_extraction.extractor import Extractor
    from podbrief_extraction.llama_server import EmbeddedLlamaServer
    from podbrief_extraction.settings import ExtractionSettings
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    assert isinstance(transcript, Transcript)
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
        async with LLMClient(llm_settings, base_url=url) as llm:
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
                    transcript, episode_id=episode_id, show=show, title=title, progress=progress
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
