"""Fixtures shared by every test suite (services/*/tests and tests/*)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from podbrief_testing import LoopbackServer, SmtpSink

REPO = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared test data not found at {SHARED} (tests read ../shared from the repo root)")
    return SHARED


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topics, groups and database names, so tests never see each other's data."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    value = os.environ.get("PODBRIEF_TEST_KAFKA")
    if not value:
        pytest.fail(
            "PODBRIEF_TEST_KAFKA is not set: run `make test` (it starts a real broker) "
            "or `scripts/kafka.sh start` and export PODBRIEF_TEST_KAFKA=127.0.0.1:9092"
        )
    return value


@pytest.fixture(scope="session")
def pg_url() -> str:
    value = os.environ.get("PODBRIEF_TEST_PG")
    if not value:
        pytest.fail(
            "PODBRIEF_TEST_PG is not set: run `make test` (it starts PostgreSQL) or "
            "`scripts/postgres.sh start` and export PODBRIEF_TEST_PG=<the DSN it prints>"
        )
    return value
