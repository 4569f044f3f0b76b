"""Session fixtures of the fault suite: a private Kafka broker and PostgreSQL (the suite kills and restarts them,
so it never touches the shared ones), one llama-server behind a fault-injecting proxy, the loopback feed of the
workload, and the results table written at the end."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from podbrief_testing import LoopbackServer
from podbrief_testing.machine import MARK_ENV, LoadSampler

sys.path.insert(0, str(Path(__file__).parent))
import faultkit
import publish

SESSION_STARTED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
# Whether the fault table is complete: every scenario selected, none filtered out by -k or -m.
_run: dict[str, Any] = {"deselected": False, "selected": 0, "shutdown_deselected": False}


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(item.path.name == "test_faults.py" for item in items):
        _run["deselected"] = True
    if any(item.path.name == "test_shutdown.py" for item in items):
        _run["shutdown_deselected"] = True


def pytest_collection_finish(session: pytest.Session) -> None:
    _run["selected"] = sum(1 for item in session.items if item.path.name == "test_faults.py")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`make test-faults` (PODBRIEF_PUBLISH=1) writes the README's fault table and back-pressure figures from what
    this run recorded, when the run passed (and, for the table, ran every scenario)."""
    if publish.requested() and exitstatus == 0:
        publish.from_artifacts(faultkit.ARTIFACTS, since=SESSION_STARTED, shutdown=not _run["shutdown_deselected"])


# Short real speech, so Whisper tiny.en and the LLM keep each scenario to seconds.
AUDIO = (
    ("jfk.flac", "audio/flac"),
    ("librivox/sense_and_sensibility_01_austen_64kb-0870.wav", "audio/wav"),
    ("librivox/sense_and_sensibility_01_austen_64kb-0920.wav", "audio/wav"),
)


def _feed(server: LoopbackServer, shared: Path) -> tuple[str, list[str]]:
    now = datetime.now(UTC).replace(microsecond=0)
    items, guids = [], []
    for i, (name, mime) in enumerate(AUDIO):
        data = (shared / "data/audio" / name).read_bytes()
        url = server.add(f"/audio/{i}/{Path(name).name}", data, mime)
        guid = f"faults-episode-{i}"
        guids.append(guid)
        items.append(
            f'<item><title>Episode {i}: {Path(name).stem}</title><guid isPermaLink="false">{guid}</guid>'
            f"<pubDate>{format_datetime(now - timedelta(hours=i))}</pubDate>"
            f'<enclosure url="{url}" length="{len(data)}" type="{mime}"/></item>'
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Fault suite radio</title>'
        "<link>http://127.0.0.1/</link><description>Known workload for fault injection</description>"
        + "".join(items)
        + "</channel></rss>"
    )
    return server.add("/feed.xml", xml, "application/rss+xml"), guids


@pytest.fixture(scope="session")
def results() -> Iterator[list[faultkit.Row]]:
    rows: list[faultkit.Row] = []
    started = time.monotonic()
    # Everything the suite starts inherits the mark, so the load recorded beside the table tells the suite's own
    # CPU from other processes'.
    sampler = LoadSampler("faults").start()
    previous = os.environ.get(MARK_ENV)
    os.environ[MARK_ENV] = sampler.mark
    try:
        yield rows
    finally:
        load = sampler.stop().as_dict()
        if previous is None:
            os.environ.pop(MARK_ENV, None)
        else:
            os.environ[MARK_ENV] = previous
    if rows:
        complete = not _run["deselected"] and len(rows) == _run["selected"]
        table = faultkit.write_results(rows, time.monotonic() - started, load, complete=complete)
        print("\n\nFault injection results\n" + table + "\n")  # noqa: T201 (make test-faults shows it)


@pytest.fixture(scope="session")
def infra(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[faultkit.Infra]:
    faultkit.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # PostgreSQL runs as the postgres user when the suite runs as root: its directory must be traversable,
    # which pytest's 0700 temp dirs are not.
    pg_root = Path(f"/tmp/podbrief-faults-pg-{uuid.uuid4().hex[:8]}")
    kafka = faultkit.PrivateKafka(tmp_path_factory.mktemp("kafka"))
    pg = faultkit.PrivatePostgres(pg_root)
    llama = faultkit.LlamaServer(faultkit.ARTIFACTS / "llama-server.log")
    loopback = LoopbackServer().start()
    proxy: faultkit.FaultProxy | None = None
    try:
        kafka.start()
        pg.start()
        llama.start()
        proxy = faultkit.FaultProxy(llama.port).start()
        feed_url, guids = _feed(loopback, shared_dir)
        yield faultkit.Infra(kafka, pg, proxy, feed_url, guids)
    finally:
        if proxy is not None:
            proxy.stop()
        llama.stop()
        loopback.stop()
        for stop in (kafka.stop, pg.stop):
            try:
                stop()
            except RuntimeError as exc:
                print(f"fault suite teardown: {exc}")  # noqa: T201
        shutil.rmtree(pg_root, ignore_errors=True)
