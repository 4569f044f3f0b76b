"""The Qdrant client: local mode (a directory) embedded, a server URL when configured."""

from __future__ import annotations

from qdrant_client import AsyncQdrantClient

from podbrief.settings import QdrantSettings


def make_qdrant_client(settings: QdrantSettings) -> AsyncQdrantClient:
    if settings.url:
        return AsyncQdrantClient(
            url=settings.url,
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            timeout=int(settings.timeout_s),
        )
    assert settings.path is not None
    settings.path.mkdir(parents=True, exist_ok=True)
    return AsyncQdrantClient(path=str(settings.path))
