"""What delivery's routes, handlers and loops share, built once by `app.build_deps`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from podbrief.bus import Publish
from podbrief.embeddings import TextEmbedder
from podbrief.http import deps_of
from podbrief_delivery.adapters.clustering import Search
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.adapters.smtp import Mailer
from podbrief_delivery.metrics import DeliveryMetrics
from podbrief_delivery.ratelimit import SignupLimits
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.sending import Deliver
from podbrief_delivery.settings import DeliverySettings
from podbrief_delivery.subscribers import SignUp
from podbrief_delivery.tokens import Signer


@dataclass
class Deps:
    settings: DeliverySettings
    repo: Repo
    embedder: TextEmbedder
    mailer: Mailer
    publish: Publish
    signer: Signer
    links: Links
    renderer: Renderer
    metrics: DeliveryMetrics
    limits: SignupLimits
    # Semantic search through the clustering service's HTTP API (the public /search page).
    search: Search
    # The operations several entry points run (routes, the CLI, the scheduler), their dependencies bound.
    deliver: Deliver
    sign_up: SignUp


DepsDep = Annotated[Deps, Depends(deps_of)]
