"""The compose stack for `make test-containers`: brought up once for the session from the images
scripts/containers/images.py built, taken down by the last test (or here, if a test failed before it). The
outcome of every test, the stack's timings and the smoke test's figures go to test-artifacts/containers/
result.json, which scripts/containers/report.py writes into the README."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podbrief_testing.feeds import DirectoryHost, feed_with_local_audio

sys.path.insert(0, str(Path(__file__).parent))
from stack import FEEDS_PORT, ROOT, Stack, prepare

ARTIFACTS = ROOT / "test-artifacts" / "containers"
# Filled by the tests and the stack fixture; written at the end of the session.
RESULT: dict[str, Any] = {"tests": {}, "timings_s": {}, "smoke": {}}


@pytest.fixture(scope="session")
def result() -> dict[str, Any]:
    return RESULT


@pytest.fixture(scope="session")
def stack(shared_dir: Path) -> Iterator[Stack]:
    feeds = ARTIFACTS / "feeds"
    shutil.rmtree(feeds, ignore_errors=True)
    feeds.mkdir(parents=True)
    # Only the newest episode (jfk.flac) is taken by ingest (INGEST_BACKFILL_LIMIT=1 in the derived file).
    feed_url, guids = feed_with_local_audio(shared_dir, DirectoryHost(feeds, f"http://feeds:{FEEDS_PORT}"), 1)
    stack = prepare(ARTIFACTS, feeds)
    stack.feed_url, stack.guids = feed_url, guids
    # What an interrupted earlier run left behind would otherwise be reused.
    try:
        stack.compose("down", "-v", timeout=300)
    except RuntimeError:
        pass
    started = time.monotonic()
    try:
        RESULT["healthy_after_s"] = stack.up()
        RESULT["timings_s"]["up_total_s"] = round(time.monotonic() - started, 1)
        yield stack
    finally:
        RESULT["timings_s"].update(stack.timings)
        for c in stack.containers():
            name = c["Labels"]["io.podman.compose.service"]
            (ARTIFACTS / f"log-{name}.txt").write_text(stack.logs_of(name, tail=2000), encoding="utf-8")
        if stack.containers():
            stack.down()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/containers/" not in report.nodeid:
        return
    name = report.nodeid.rsplit("::", 1)[-1]
    if report.when == "call" or report.outcome != "passed":
        previous = RESULT["tests"].get(name)
        if previous is None or previous["outcome"] == "passed":
            RESULT["tests"][name] = {"outcome": report.outcome, "seconds": round(report.duration, 1)}


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not RESULT["tests"]:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    RESULT["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (ARTIFACTS / "result.json").write_text(json.dumps(RESULT, indent=2) + "\n", encoding="utf-8")
