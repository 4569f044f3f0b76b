"""`podbrief web` serves what `podbrief run` stored: the brief's insight links open on the run's data directory,
topics list, and search goes over HTTP to the clustering app served beside delivery."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from podbrief.bus import MemoryTransport
from podbrief.embeddings import Embedder
from podbrief_delivery.app import make_deps
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_run.layout import DataDir
from podbrief_run.web import run_web, web_servers, web_settings
from podbrief_testing import free_port
from podbrief_testing.delivery import day_events

pytestmark = pytest.mark.unit


def test_nothing_to_show_without_a_run(tmp_path: Path) -> None:
    assert run_web(tmp_path / "empty") == 2


def test_pages_of_a_runs_data_directory(tmp_path: Path) -> None:
    layout = DataDir(tmp_path / "data")
    layout.root.mkdir()
    port, cport = free_port(), free_port()
    settings = web_settings(layout, host="127.0.0.1", port=port, clustering_port=cport)
    assert settings["delivery"].public_base_url == f"http://127.0.0.1:{port}"
    assert settings["delivery"].db.url.get_secret_value() == layout.db_url("delivery")
    embedder = Embedder()
    events = day_events(embedder)

    async def store() -> None:  # what a run's delivery stage leaves in the data directory
        async with make_deps(settings["delivery"], embedder=embedder) as deps:
            for ev in events:
                await on_insight_clustered(ev, repo=deps.repo, embedder=embedder)

    asyncio.run(store())
    holder: dict[str, list[object]] = {}

    def serve() -> None:
        async def main() -> None:
            transport = MemoryTransport()
            await transport.start()
            servers = web_servers(layout, transport, host="127.0.0.1", port=port, clustering_port=cport)
            holder["servers"] = list(servers)
            await asyncio.gather(*(s.serve() for s in servers))
            await transport.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            servers = holder.get("servers", [])
            if servers and all(getattr(s, "started", False) for s in servers):
                break
            time.sleep(0.1)
        else:
            pytest.fail("podbrief web did not start")
        ev = events[0]
        page = httpx.get(f"{base}/insights/{ev.payload.insight.insight_id}", timeout=30)
        assert page.status_code == 200 and ev.payload.insight.text in page.text
        assert httpx.get(f"{base}/topics", timeout=30).status_code == 200
        # Search reaches the clustering app over HTTP; its store is this run's (empty here), so: no matches.
        found = httpx.get(f"{base}/search", params={"q": "home batteries"}, timeout=30)
        assert found.status_code == 200 and "No insights match" in found.text
    finally:
        for s in holder.get("servers", []):
            s.should_exit = True  # type: ignore[attr-defined]
        thread.join(60)
