"""The brief's web page and the sign-up page in real headless Chromium (Debian's chromium package): a
screenshot of the brief saved under test-artifacts/, the five picks asserted in the rendered DOM, and a
sign-up driven through the form over the DevTools protocol (on a pipe: no extra client library)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from podbrief.embeddings import Embedder
from podbrief_delivery import subscribers
from podbrief_delivery.app import create_app, make_deps
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_delivery.settings import DeliverySettings
from podbrief_testing import SmtpSink, free_port
from podbrief_testing.browser import DevTools, run_chromium
from podbrief_testing.delivery import NOW, day_events, make_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"


class Served:
    """The delivery app (or another ASGI app) under uvicorn in a thread, on a real port, as a browser needs it."""

    def __init__(self, settings: DeliverySettings | None, port: int, app: Any = None) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app if app is not None else create_app(settings),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the app did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


async def prepare(settings: DeliverySettings, embedder: Embedder) -> str:
    """Store a day of insights, subscribe someone, send their brief; return the brief page's URL."""
    async with make_deps(settings, embedder=embedder) as deps:
        for ev in day_events(embedder):
            await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
        sub = await deps.sign_up(
            "web@example.com",
            subscribers.SignupProfile(
                interests="home batteries, energy storage, nuclear power, AI models, sleep and health"
            ),
        )
        await subscribers.confirm(sub.id, sub.token_version, repo=deps.repo, metrics=deps.metrics)
        report = await deps.deliver(now=NOW, force=True)
        assert report.sent == 1 and report.outcomes[0].picks == 5
        return deps.links.brief_page(sub.id, uuid_of(report.outcomes[0].brief_id))


def uuid_of(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


def test_brief_page_and_signup_in_headless_chromium(tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder) -> None:
    port = free_port()
    settings = make_settings(tmp_path, smtp_sink.port, public_base_url=f"http://127.0.0.1:{port}")
    url = asyncio.run(prepare(settings, embedder))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "delivery-brief-page.png"
    shot.unlink(missing_ok=True)
    with Served(settings, port):
        dom = run_chromium("--dump-dom", url)
        picks = re.findall(r'<div class="card pick" data-insight="[^"]+" data-rank="(\d)"', dom)
        assert picks == ["1", "2", "3", "4", "5"]
        assert dom.count("That is what we found.") >= 5 and dom.count("#t=") >= 5
        run_chromium(f"--screenshot={shot}", "--window-size=1200,2000", url)
        assert shot.is_file() and shot.stat().st_size > 10_000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        tools = DevTools()
        try:
            tools.call("Page.navigate", session=True, url=f"http://127.0.0.1:{port}/signup")
            tools.wait_for("document.readyState === 'complete' && !!document.getElementById('signup')")
            tools.evaluate("""(() => {
                document.getElementById('email').value = 'browser@example.com';
                document.getElementById('interests').value = 'solar power and home batteries';
                document.getElementById('shows').value = 'Grid Talk';
                document.getElementById('submit').click();
                return true; })()""")
            title = tools.wait_for("document.getElementById('title') && document.getElementById('title').textContent")
            assert title == "Check your inbox"
            (ARTIFACTS / "delivery-signup-done.png").write_bytes(tools.page_png(1200, 1600))
        finally:
            tools.close()
    mails = [m for m in smtp_sink.wait_for(3) if str(m["To"]) == "browser@example.com"]
    assert len(mails) == 1 and mails[0]["Subject"] == "Confirm your podbrief subscription"
