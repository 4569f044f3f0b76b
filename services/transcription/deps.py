"""The dependencies handlers and routes share, built by `app.build_deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends
from podbrief.bus import Publish
from podbrief.http import deps_of
from podbrief_transcription.adapters.download import EnclosureFetcher
from podbrief_transcription.adapters.engine import Transcriber
from podbrief_transcription.adapters.repo import TranscriptRepo
from podbrief_transcription.metrics import TranscriptionMetrics
from podbrief_transcription.settings import TranscriptionSettings


@dataclass
class Deps:
    settings: TranscriptionSettings
    repo: TranscriptRepo
    engine: Transcriber
    fetcher: EnclosureFetcher
    publish: Publish
    metrics: TranscriptionMetrics
    http: httpx.AsyncClient


DepsDep = Annotated[Deps, Depends(deps_of)]
