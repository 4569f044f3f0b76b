"""The brief's web page and the sign-up page in real headless Chromium (Debian's chromium package): a
screenshot of the brief saved under test-artifacts/, the five picks asserted in the rendered DOM, and a
sign-up driven through the form over the DevTools protocol (on a pipe: no extra client library)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
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
from podbrief_testing.delivery import NOW, day_events, make_settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    return exe


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


def run_chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return out.stdout


def _wire(read_fd: int, write_fd: int) -> None:
    a, b = os.dup(read_fd), os.dup(write_fd)  # out of the way first: read_fd may itself be 3 or 4
    os.dup2(a, 3)
    os.dup2(b, 4)


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe: NUL-separated JSON on fds 3 and 4."""

    def __init__(self) -> None:
        self.profile = tempfile.TemporaryDirectory()
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self.proc = subprocess.Popen(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile.name}",
                "--remote-debugging-pipe",
                "--window-size=1200,1600",
                "about:blank",
            ],
            # Chromium reads commands on fd 3 and writes replies on fd 4; keep both through close_fds.
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _wire(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable", session=True)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
        raise TimeoutError(method)

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 30) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expression)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        os.close(self._w)
        os.close(self._r)
        self.profile.cleanup()


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
            png = tools.call("Page.captureScreenshot", session=True, format="png")["data"]
            import base64

            (ARTIFACTS / "delivery-signup-done.png").write_bytes(base64.b64decode(png))
        finally:
            tools.close()
    mails = [m for m in smtp_sink.wait_for(3) if str(m["To"]) == "browser@example.com"]
    assert len(mails) == 1 and mails[0]["Subject"] == "Confirm your podbrief subscription"
