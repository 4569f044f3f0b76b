"""`podbrief web`: the web pages of what `podbrief run` stored in its data directory. Delivery (the briefs, the
insight and topic pages, search) and clustering (the search API delivery asks over HTTP) are served from the
same databases, vectors and signing secret as the run, on the ports the brief's links point at, so every link
in a brief written by `podbrief run` opens."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvicorn
from podbrief.bus import MemoryTransport
from podbrief.settings import HttpSettings
from rich.console import Console
from rich.text import Text

from podbrief_run.layout import DataDir
from podbrief_run.runner import _create_app, _settings


def _shown(host: str) -> str:
    """The address a browser on this machine uses for a bind address."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def web_settings(layout: DataDir, *, host: str, port: int, clustering_port: int) -> dict[str, Any]:
    """Delivery's and clustering's settings as the run has them, with the public URL and search on these ports."""
    base = f"http://{_shown(host)}:{port}"
    overrides: dict[str, dict[str, Any]] = {
        "delivery": {
            "http": HttpSettings(host=host, port=port),
            "public_base_url": base,
            "clustering_url": f"http://127.0.0.1:{clustering_port}",
        },
        "clustering": {"http": HttpSettings(host="127.0.0.1", port=clustering_port)},
    }
    every = _settings(layout, False, overrides)
    return {name: every[name] for name in ("delivery", "clustering")}


def web_servers(
    layout: DataDir, transport: MemoryTransport, *, host: str, port: int, clustering_port: int
) -> list[uvicorn.Server]:
    """Clustering's and delivery's apps under uvicorn, not started."""
    settings = web_settings(layout, host=host, port=port, clustering_port=clustering_port)
    return [
        uvicorn.Server(
            uvicorn.Config(
                _create_app(name, settings[name], transport),
                host=settings[name].http.host,
                port=settings[name].http.port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
        )
        for name in ("clustering", "delivery")
    ]


async def serve_web(layout: DataDir, *, host: str, port: int, clustering_port: int) -> None:
    # An idle bus of their own: serving pages consumes nothing and publishes nothing, and leaves the run's bus alone.
    transport = MemoryTransport()
    await transport.start()
    servers = web_servers(layout, transport, host=host, port=port, clustering_port=clustering_port)
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        await transport.stop()


def run_web(data_dir: Path, *, host: str = "127.0.0.1", port: int = 8005, clustering_port: int = 8004) -> int:
    console = Console(stderr=True)
    layout = DataDir(data_dir.resolve())
    if not layout.db("delivery").exists():
        console.print(Text(f"nothing to show: {layout.root} has no delivery database; run `podbrief run` first"))
        return 2
    base = f"http://{_shown(host)}:{port}"
    console.print(
        Text("serving the pages of ")
        .append(str(layout.root), style="bold")
        .append(f": {base}/topics (trending), {base}/search, and every link of the briefs under {layout.briefs}")
    )
    asyncio.run(serve_web(layout, host=host, port=port, clustering_port=clustering_port))
    return 0
