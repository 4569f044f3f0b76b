"""The dependencies handlers and routes share, built by `app.build_deps`."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from podbrief_transcription.adapters import EnclosureFetcher, Transcriber, TranscriptRepo
from podbrief_transcription.handlers import Publish
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
