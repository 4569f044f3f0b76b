"""The services' settings classes as a test reads them: from a clean environment, so neither the caller's shell nor
a .env file in the checkout leaks into a test."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from podbrief.settings import ServiceSettings

if TYPE_CHECKING:
    import pytest

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")


def settings_cls(service: str) -> type[ServiceSettings]:
    """The settings class `podbrief serve <service>` reads."""
    cls: type[ServiceSettings] = importlib.import_module(f"podbrief_{service}.app").SPEC.settings_cls
    return cls


def clean_service_env(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """No service variable from the caller's environment, no PODBRIEF_SECRETS_DIR, and a working directory
    without a .env file."""
    monkeypatch.chdir(cwd)
    for key in list(os.environ):
        if key.startswith(tuple(f"{s.upper()}_" for s in SERVICES)) or key == "PODBRIEF_SECRETS_DIR":
            monkeypatch.delenv(key)
