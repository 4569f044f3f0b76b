"""A real podcast feed whose newest episodes are real speech, for end-to-end runs: served from loopback to
processes, or from a directory that a static web server (a container) serves to containers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

# Real speech from ../shared/data/audio, newest episode first, with the content type each is served as.
SPEECH = (("jfk.flac", "audio/flac"), ("librivox/sense_and_sensibility_01_austen_64kb-0870.wav", "audio/wav"))


class FeedHost(Protocol):
    """Where the feed and its audio are served from (LoopbackServer, DirectoryHost)."""

    @property
    def base_url(self) -> str: ...

    def add(self, path: str, body: bytes | str, content_type: str = "application/octet-stream") -> str: ...


class DirectoryHost:
    """Files laid out under `root` for a static web server that serves `root` at `base_url`, such as a container
    on a compose network (http://feeds:8080). Paths that were never added answer 404 there."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self._base_url = base_url.rstrip("/")

    @property
    def base_url(self) -> str:
        return self._base_url

    def add(self, path: str, body: bytes | str, content_type: str = "application/octet-stream") -> str:
        # The content type is the server's business (by extension); it is accepted for FeedHost's sake.
        dest = self.root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(body.encode() if isinstance(body, str) else body)
        return f"{self._base_url}/{path.lstrip('/')}"


def feed_with_local_audio(shared: Path, host: FeedHost, episodes: int = 2) -> tuple[str, list[str]]:
    """pc20rss.xml as served by `host`: its `episodes` newest items point at real speech (jfk.flac first), every
    other remote URL at paths of `host` that answer 404, so nothing leaves the machine. Returns the feed's URL
    and the guids of the items given speech, newest first."""
    import feedparser

    xml = (shared / "data/feeds/real-world/pc20rss.xml").read_text()
    parsed = feedparser.parse(xml)
    newest = sorted(parsed.entries, key=lambda e: e.published_parsed, reverse=True)[:episodes]
    for entry, (name, mime) in zip(newest, SPEECH, strict=False):
        old = entry.enclosures[0]["href"]
        url = host.add(f"/audio/{Path(name).name}", (shared / "data/audio" / name).read_bytes(), mime)
        xml = xml.replace(f'url="{old}"', f'url="{url}"', 1)

    def offline(m: re.Match[str]) -> str:
        url = m.group(1)
        return m.group(0) if url.startswith(host.base_url) else f'url="{host.base_url}/gone/{abs(hash(url))}"'

    xml = re.sub(r'url="(https?://[^"]+)"', offline, xml)
    return host.add("/pc20rss.xml", xml, "application/rss+xml"), [e.id for e in newest]
