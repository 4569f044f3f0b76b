"""Fixtures for delivery's tests: settings on a temp SQLite file and the real SMTP sink, the real embedder
(loaded once per session), and the Deps built the way the app builds them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from podbrief.embeddings import Embedder
from podbrief_delivery.app import make_deps
from podbrief_delivery.deps import Deps
from podbrief_delivery.settings import DeliverySettings
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import make_settings


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink) -> DeliverySettings:
    return make_settings(tmp_path, smtp_sink.port)


@pytest.fixture
async def deps(settings: DeliverySettings, embedder: Embedder) -> AsyncIterator[Deps]:
    published: list[Any] = []

    async def publish(event: Any) -> None:
        published.append(event)

    async with make_deps(settings, publish=publish, embedder=embedder) as d:
        d.published = published  # type: ignore[attr-defined]
        yield d
