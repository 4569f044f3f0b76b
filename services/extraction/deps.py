"""What the handlers and routes need, built once by `app.build_deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from podbrief.bus import Publish
from podbrief.http import deps_of
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.adapters.repo import ExtractionRepo
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.settings import ExtractionSettings


@dataclass
class Deps:
    settings: ExtractionSettings
    repo: ExtractionRepo
    llm: LLMClient
    extractor: Extractor
    metrics: ExtractionMetrics
    publish: Publish
    llama: EmbeddedLlamaServer | None = None


DepsDep = Annotated[Deps, Depends(deps_of)]
