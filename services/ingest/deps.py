"""What ingest's routes and loops share, built once by `app.build_deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from podbrief.http import deps_of
from podbrief.netfetch import GuardedClient
from podbrief_ingest.adapters.repo import IngestRepo
from podbrief_ingest.crawler import Crawler
from podbrief_ingest.metrics import IngestMetrics
from podbrief_ingest.outbox import Outbox
from podbrief_ingest.settings import IngestSettings
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass
class Deps:
    settings: IngestSettings
    engine: AsyncEngine
    repo: IngestRepo
    client: GuardedClient
    crawler: Crawler
    outbox: Outbox
    metrics: IngestMetrics


DepsDep = Annotated[Deps, Depends(deps_of)]
