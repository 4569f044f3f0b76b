"""The dependencies the composition root (app.build_deps) hands to handlers and routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from podbrief.bus import Publish
from podbrief.http import deps_of
from podbrief_clustering.clusterer import Clusterer
from podbrief_clustering.metrics import ClusteringMetrics
from podbrief_clustering.settings import ClusteringSettings


@dataclass
class Deps:
    settings: ClusteringSettings
    clusterer: Clusterer
    metrics: ClusteringMetrics
    publish: Publish


DepsDep = Annotated[Deps, Depends(deps_of)]
