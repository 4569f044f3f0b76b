"""Headless Chromium (Debian's chromium package) for the browser tests and the README's pictures: one-shot runs
(`run_chromium`) and a tab driven over the DevTools protocol on a pipe (`DevTools`, no client library).

`python -m podbrief_testing.browser PAGE OUT.png [--width W]` takes the whole page's picture, as tall as its
content (scripts/brief-screenshot.sh uses it for the README's brief)."""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class BrowserMissingError(RuntimeError):
    pass


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise BrowserMissingError(
            "chromium is not installed: apt-get install -y chromium (scripts/system-deps.sh test)"
        )
    return exe


def _end_group(proc: subprocess.Popen[Any]) -> None:
    """Chromium's helpers (zygote, crashpad, utility processes) can outlive the browser process and keep
    writing into the profile; they share its process group, so end the group before the profile goes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_profile(profile: str, timeout_s: float = 10.0) -> None:
    """Remove a Chromium profile directory, retrying while a helper that was just killed lets go of it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            shutil.rmtree(profile)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def run_chromium(*args: str) -> str:
    profile = tempfile.mkdtemp(prefix="podbrief-chromium-")
    try:
        proc = subprocess.Popen(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            _end_group(proc)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    finally:
        _remove_profile(profile)
    return out


def _wire(read_fd: int, write_fd: int) -> None:
    a, b = os.dup(read_fd), os.dup(write_fd)  # out of the way first: read_fd may itself be 3 or 4
    os.dup2(a, 3)
    os.dup2(b, 4)


class DevTools:
    """Chrome DevTools protocol over --remote-debugging-pipe: NUL-separated JSON on fds 3 and 4."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="podbrief-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()
        self.proc = subprocess.Popen(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe",
                "--window-size=1200,1600",
                "about:blank",
            ],
            # Chromium reads commands on fd 3 and writes replies on fd 4; keep both through close_fds.
            pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: _wire(to_chrome_r, from_chrome_w),
            start_new_session=True,
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

    def open(self, url: str, ready: str = "true") -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for(f"document.readyState === 'complete' && ({ready})")

    def page_png(self, width: int, height: int, *, mobile: bool = False, max_height: int | None = None) -> bytes:
        """The page at this viewport, as tall as its content (up to max_height): a PNG. The viewport is set
        for the picture and left so; `Emulation.clearDeviceMetricsOverride` restores it."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )
        full = int(self.evaluate("document.documentElement.scrollHeight"))
        tall = min(full, max_height) if max_height else full
        clip = {"x": 0, "y": 0, "width": width, "height": tall, "scale": 1}
        data = self.call("Page.captureScreenshot", session=True, format="png", clip=clip, captureBeyondViewport=True)
        png = base64.b64decode(data["data"])
        if png[:8] != PNG_MAGIC:
            raise RuntimeError("chromium's screenshot is not a PNG")
        return png

    def close(self) -> None:
        """Ask the browser to close (it flushes its profile and ends its helpers), end what is left of its
        process group, then remove the profile."""
        try:
            os.write(self._w, json.dumps({"id": self._id + 1, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        _end_group(self.proc)
        os.close(self._w)
        os.close(self._r)
        _remove_profile(self.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podbrief_testing.browser", description=__doc__)
    parser.add_argument("page", help="an http(s) URL or an HTML file")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--max-height", type=int, default=6000)
    args = parser.parse_args(argv)
    page = str(args.page)
    if not page.startswith(("http://", "https://", "file://")):
        path = Path(page)
        if not path.is_file():
            parser.error(f"{page}: not a URL and no such file")
        page = path.resolve().as_uri()
    try:
        tools = DevTools()
    except BrowserMissingError as exc:
        parser.exit(2, f"{parser.prog}: {exc}\n")
    try:
        tools.open(page)
        # A short viewport: the picture ends where the content does (a page shorter than a screen included).
        png = tools.page_png(args.width, 240, max_height=args.max_height)
    finally:
        tools.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
