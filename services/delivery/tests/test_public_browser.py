"""The public pages in real headless Chromium, as a reader goes through them: from the brief to an insight's
page, on to a related insight from another show, its topic, the trending topics, and a search that delivery
sends over HTTP to a stand-in for clustering's /v1/search. A screenshot of each page kind at phone and desktop
width lands under test-artifacts/web/; with PODBRIEF_UPDATE_SCREENSHOTS=1 also under docs/web/, the README's
pictures."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Query
from podbrief.embeddings import Embedder
from podbrief.events import InsightClustered
from podbrief_delivery.settings import DeliverySettings
from podbrief_testing import SmtpSink, free_port
from podbrief_testing.browser import DevTools
from podbrief_testing.delivery import LABELS, day_events, make_settings

from .test_browser import ARTIFACTS, REPO, Served, prepare

pytestmark = pytest.mark.slow

SHOTS = ARTIFACTS / "web"
DOCS = REPO / "docs" / "web"
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}


def clustering_stand_in(events: list[InsightClustered], embedder: Embedder) -> FastAPI:
    """GET /v1/search answering clustering's response shape: cosine similarity over the day's vectors."""
    app = FastAPI()
    vectors = np.asarray([e.payload.vector for e in events], dtype=np.float32)
    queries: list[str] = []
    app.state.queries = queries

    @app.get("/v1/search")
    def search(q: str = Query(min_length=1, max_length=1000), limit: int = 10) -> dict[str, Any]:
        queries.append(q)
        v = embedder.embed([q])[0]
        scores = vectors @ (v / np.linalg.norm(v))
        best = np.argsort(-scores)[:limit]
        results = [
            {
                "insight_id": str(events[i].payload.insight.insight_id),
                "score": float(scores[i]),
                "text": events[i].payload.insight.text,
                "show": events[i].payload.episode.show,
                "episode_id": str(events[i].payload.episode.episode_id),
                "episode_title": events[i].payload.episode.title,
            }
            for i in best
            if scores[i] > 0.3
        ]
        return {"query": q, "took_ms": 1.0, "results": results}

    return app


class Reader:
    """A browser tab driven over DevTools: open, click, read, and take the page's picture at a width."""

    def __init__(self, tools: DevTools) -> None:
        self.tools = tools

    def open(self, url: str, ready: str) -> None:
        self.tools.call("Page.navigate", session=True, url=url)
        self.wait(ready)

    def wait(self, ready: str) -> Any:
        return self.tools.wait_for(f"document.readyState === 'complete' && ({ready})")

    def click(self, selector: str, ready: str) -> None:
        before = self.tools.evaluate("location.href")
        self.tools.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.tools.wait_for(f"location.href !== {json.dumps(before)}")
        self.wait(ready)

    def text(self, selector: str) -> str:
        return str(self.tools.evaluate(f"document.querySelector({json.dumps(selector)}).textContent.trim()"))

    def all_text(self, selector: str) -> list[str]:
        expr = f"Array.from(document.querySelectorAll({json.dumps(selector)})).map(e => e.textContent.trim())"
        return list(self.tools.evaluate(expr))

    def shot(self, name: str, *, dark: bool = False) -> None:
        features = [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]
        self.tools.call("Emulation.setEmulatedMedia", session=True, features=features)
        for kind, (width, height) in WIDTHS.items():
            # The whole page, up to a few screens.
            png = self.tools.page_png(width, height, mobile=kind == "phone", max_height=3 * height)
            assert len(png) > 5_000
            suffix = "-dark" if dark else ""
            (SHOTS / f"{name}-{kind}{suffix}.png").write_bytes(png)
            # No sideways scrolling on a phone: the page fits its width.
            assert int(self.tools.evaluate("document.documentElement.scrollWidth")) <= width, (name, kind)
        self.tools.call("Emulation.clearDeviceMetricsOverride", session=True)
        self.tools.call("Emulation.setEmulatedMedia", session=True, features=[])


def test_reader_follows_an_insight_to_related_topic_and_search(
    tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder
) -> None:
    port, search_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    settings: DeliverySettings = make_settings(
        tmp_path, smtp_sink.port, public_base_url=base, clustering_url=f"http://127.0.0.1:{search_port}"
    )
    brief_url = asyncio.run(prepare(settings, embedder))
    events = day_events(embedder)
    by_id = {e.payload.insight.insight_id: e for e in events}
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    stand_in = clustering_stand_in(events, embedder)
    with Served(settings, port), Served(None, search_port, app=stand_in):
        reader = Reader(DevTools())
        try:
            # The brief links each insight to its page, signed for this reader: feedback links are there.
            reader.open(brief_url, "!!document.querySelector('.pick a.insight-link')")
            first = reader.text(".pick a.insight-link")
            reader.click(".pick a.insight-link", "!!document.getElementById('insight-text')")
            assert reader.text("#insight-text") == first
            assert reader.all_text("#feedback a") == ["👍 Useful", "👎 Not for me", "More like this"]
            iid = uuid.UUID(reader.tools.evaluate("document.getElementById('insight').dataset.insight"))
            ev = by_id[iid]

            # The public page, as anyone who was sent the link sees it.
            reader.open(f"{base}/insights/{iid}", "!!document.getElementById('insight-text')")
            assert reader.text("#insight-text") == ev.payload.insight.text
            assert ev.payload.insight.quote in reader.text("#quote")
            assert reader.text("#show") == ev.payload.episode.show
            assert reader.text("#episode") == ev.payload.episode.title
            assert reader.tools.evaluate("document.getElementById('listen').href").endswith(
                f"#t={int(ev.payload.insight.start_s)}"
            )
            label = reader.text("#topic")
            assert label in LABELS.values()
            assert reader.text("#related-heading") == "Related Insights"
            related = reader.all_text("#related .card .src strong")
            assert related and ev.payload.episode.show not in related
            assert reader.text("#signup-heading") and not reader.tools.evaluate("!!document.getElementById('feedback')")
            assert reader.tools.evaluate("document.querySelector('meta[property=\"og:title\"]').content")
            reader.shot("insight")
            reader.shot("insight", dark=True)

            # Keyboard: the first Tab reaches the skip link, which leads to the main content.
            reader.tools.call("Input.dispatchKeyEvent", session=True, type="keyDown", key="Tab", code="Tab")
            reader.tools.call("Input.dispatchKeyEvent", session=True, type="keyUp", key="Tab", code="Tab")
            assert reader.tools.evaluate("document.activeElement.className") == "skip"

            # A related insight from another show, then its topic.
            other = reader.text("#related a.insight-link")
            arrived = f"document.getElementById('insight-text')?.textContent === {json.dumps(other)}"
            reader.click("#related a.insight-link", arrived)
            assert reader.text("#show") != ev.payload.episode.show
            reader.click("#topic", "!!document.getElementById('topic-label')")
            assert reader.text("#topic-label") == label
            topic_shows = {s.split(" (")[0] for s in reader.all_text("#shows li")}
            cluster = ev.payload.cluster_id
            assert topic_shows == {e.payload.episode.show for e in events if e.payload.cluster_id == cluster}
            assert len(reader.all_text("#timeline .card")) == len(
                [e for e in events if e.payload.cluster_id == cluster]
            )
            reader.shot("topic")

            reader.open(f"{base}/topics", "!!document.getElementById('trending')")
            trending = reader.all_text("#trending h2")
            assert trending[0] == LABELS["batt"] and set(trending) == set(LABELS.values())
            reader.shot("topics")

            # Search, through the form, as a reader types it.
            reader.open(f"{base}/search", "!!document.getElementById('q')")
            reader.tools.evaluate("document.getElementById('q').value = 'are home batteries worth it'")
            reader.click("form.search button", "!!document.getElementById('results')")
            found = reader.all_text("#results h2")
            assert found and "batter" in found[0].lower()
            assert stand_in.state.queries == ["are home batteries worth it"]
            reader.shot("search")
            reader.tools.evaluate("document.getElementById('q').value = '   '")
            reader.click("form.search button", "!!document.getElementById('search-message')")
            assert "Type a few words" in reader.text("#search-message")
        finally:
            reader.tools.close()
    names = sorted(p.name for p in SHOTS.iterdir())
    assert len(names) == 10, names
    if os.environ.get("PODBRIEF_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for p in SHOTS.iterdir():
            shutil.copyfile(p, DOCS / p.name)
