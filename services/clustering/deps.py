"""The dependencies the composition root (app.build_deps) hands to handlers and routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from podbrief.bus import Publish
from podbrief.service import deps_of
from podbrief_clustering.core import Clusterer
from podbrief_clustering.metrics import ClusteringMetrics
from podbrief_clustering.settings import ClusteringSettings


@dataclass
class Deps:
    settings: ClusteringSettings
    clusterer: Clusterer
    metrics: ClusteringMetrics
    publish: Publish


def _deps(deps: Annotated[Any, Depends(deps_of)]) -> Deps:
    if not isinstance(deps, Deps):
        raise TypeError("the app's dependencies are not clustering Deps")
    return deps


DepsDep = Annotated[Deps, Depends(_deps)]
