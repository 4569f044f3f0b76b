"""Fixtures for the deployment checks: the repo root, the kustomize and promtool binaries (installed by
scripts/validate_deploy.sh), rendered overlays, and the metric names the five services really export."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).parent))
from endpoints import render_overlay

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
OVERLAYS = ("dev", "gpu")
INSTALL_HINT = "run scripts/validate_deploy.sh --install (it installs kustomize and promtool) first"


def tool(name: str) -> Path:
    """A binary from <repo>/.cache/bin, else from PATH; a clear failure when neither has it."""
    local = ROOT / ".cache" / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found in {local.parent} or on PATH; {INSTALL_HINT}")
    return Path(found)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def kustomize() -> Path:
    return tool("kustomize")


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool("promtool")


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, list[dict[str, Any]]]:
    """`kustomize build` of each overlay, as parsed documents."""
    return {overlay: render_overlay(kustomize, overlay) for overlay in OVERLAYS}


def _scrape(service: str, tmp: Path) -> tuple[str, dict[str, Any] | str]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "deploy" / "scrape_metrics.py"), service, str(tmp / service)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"service"')]
    if proc.returncode != 0 or not lines:
        return service, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return service, json.loads(lines[-1])


@pytest.fixture(scope="session")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each service's /metrics (sample names and families), each app started in its own process, all five at
    once."""
    tmp = tmp_path_factory.mktemp("scrape")
    with ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
        results = dict(pool.map(lambda s: _scrape(s, tmp), SERVICES))
    failed = {s: r for s, r in results.items() if isinstance(r, str)}
    assert not failed, "could not start and scrape: " + "\n".join(f"{s}: {r}" for s, r in failed.items())
    return {s: r for s, r in results.items() if isinstance(r, dict)}


@pytest.fixture(scope="session")
def exported_metrics(scraped: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Sample names each service exports."""
    return {s: set(r["metrics"]) for s, r in scraped.items()}


def _settings_field(model: type[BaseModel], path: list[str]) -> bool:
    """Whether `a__b__c` names a field path through nested pydantic models, as pydantic-settings reads env."""
    name, rest = path[0], path[1:]
    field = model.model_fields.get(name)
    if field is None:
        return False
    if not rest:
        return True
    for candidate in (field.annotation, *get_args(field.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return _settings_field(candidate, rest)
    return False


@pytest.fixture(scope="session")
def settings_env() -> Callable[[str], str | None]:
    """Checks an environment variable name against the services' settings classes: returns None when some
    service reads it, else why not."""
    classes: dict[str, type[BaseModel]] = {}
    for service in SERVICES:
        module = importlib.import_module(f"podbrief_{service}.settings")
        cls = getattr(module, f"{service.capitalize()}Settings")
        classes[service.upper() + "_"] = cls

    def check(var: str) -> str | None:
        for prefix, cls in classes.items():
            if var.startswith(prefix):
                path = var[len(prefix) :].lower().split("__")
                if _settings_field(cls, path):
                    return None
                return f"{var}: no field {'.'.join(path)} in {cls.__name__}"
        return f"{var}: no service prefix"

    return check
