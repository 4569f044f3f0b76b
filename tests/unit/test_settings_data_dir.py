"""`<SVC>_DATA_DIR` moves every location a service writes by default (its SQLite database, the embedded Qdrant
directory, the model cache) under that directory, as the Dockerfile and compose promise: a container mounts its
volume there, and everything else in the image is read-only. A location set on its own stays where it is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from podbrief.settings import under_data_dir
from podbrief_testing.settings import SERVICES, clean_service_env, settings_cls
from pydantic import SecretStr

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_service_env(monkeypatch, tmp_path)
    monkeypatch.setenv("DELIVERY_ALLOW_INSECURE_DEV_SECRET", "true")


@pytest.mark.parametrize("service", SERVICES)
def test_the_default_database_follows_the_data_dir(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{service.upper()}_DATA_DIR", "/data")
    settings = settings_cls(service)()
    assert settings.data_dir == Path("/data")
    assert settings.db.url.get_secret_value() == f"sqlite+aiosqlite:////data/{service}.db"  # type: ignore[attr-defined]


def test_qdrant_and_the_model_cache_follow_it_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERING_DATA_DIR", "/data")
    monkeypatch.setenv("TRANSCRIPTION_DATA_DIR", "/var/lib/podbrief")
    assert settings_cls("clustering")().qdrant.path == Path("/data/qdrant")  # type: ignore[attr-defined]
    assert settings_cls("transcription")().models_dir == Path("/var/lib/podbrief/models")  # type: ignore[attr-defined]


def test_a_location_set_on_its_own_stays_and_the_rest_of_its_block_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERING_DATA_DIR", "/data")
    monkeypatch.setenv("CLUSTERING_QDRANT__PATH", "/srv/vectors")
    monkeypatch.setenv("CLUSTERING_DB__POOL_SIZE", "3")
    monkeypatch.setenv("TRANSCRIPTION_DATA_DIR", "/data")
    monkeypatch.setenv("TRANSCRIPTION_DB__URL", "postgresql+asyncpg://u:p@db/podbrief")
    clustering = settings_cls("clustering")()
    assert clustering.qdrant.path == Path("/srv/vectors")  # type: ignore[attr-defined]
    assert clustering.db.url.get_secret_value() == "sqlite+aiosqlite:////data/clustering.db"  # type: ignore[attr-defined]
    assert clustering.db.pool_size == 3  # type: ignore[attr-defined]
    transcription = settings_cls("transcription")()
    assert transcription.db.url.get_secret_value() == "postgresql+asyncpg://u:p@db/podbrief"  # type: ignore[attr-defined]


def test_without_a_data_dir_nothing_moves() -> None:
    settings = settings_cls("clustering")()
    assert settings.data_dir == Path(".data")
    assert settings.qdrant.path == Path(".data/qdrant")  # type: ignore[attr-defined]
    assert settings.db.url.get_secret_value() == "sqlite+aiosqlite:///.data/clustering.db"  # type: ignore[attr-defined]


def test_only_default_locations_under_dot_data_move() -> None:
    data = Path("/data")
    assert under_data_dir(Path(".data/models"), data) == Path("/data/models")
    for unmoved in (Path(".cache/llama/bin/llama-server"), Path("/abs/.data/x"), "text", 3, None):
        assert under_data_dir(unmoved, data) is unmoved
    url = SecretStr("postgresql+asyncpg://u:p@h/db")
    assert under_data_dir(url, data) is url
