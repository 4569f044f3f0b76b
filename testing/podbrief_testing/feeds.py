"""Podcast feeds for end-to-end runs, served from loopback to processes, or from a directory that a static web
server (a container) serves to containers: a real feed whose newest episodes are real speech, and a hostile
publisher's feed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol
from xml.sax.saxutils import escape

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


# What a hostile publisher writes (#21): Rich markup, a forged "Unsubscribe:" line and a forged header behind
# CR/LF (and U+2028), a bidi override and a zero-width space, HTML, and fields longer than anything stores.
EVIL = "evil.example"
FORGED_LINE = f"Unsubscribe: https://{EVIL}/unsubscribe"
FORGED_HEADER = f"Bcc: victim@{EVIL}"
BIDI_AND_INVISIBLE = "\u202e\u200b"
HOSTILE_SHOW = (
    f"Evil\u202eFM\u200b [link=https://{EVIL}]Daily[/link] <script>alert(1)</script>\r\n{FORGED_LINE}\r\n"
    f"{FORGED_HEADER}\r\n" + "and a show name that goes on " * 50  # 1,450 characters: the show title holds 1,000
)
HOSTILE_TITLES = (
    f"[link=https://{EVIL}]Ask not[/link] \u202eevil\u200b speech <img src=x onerror=alert(1)>\r\n{FORGED_LINE}"
    f"\u2028{FORGED_HEADER}",
    f'[bold red]Loud[/bold red]\u200b\u202e <a href="https://{EVIL}">click</a>\r\n{FORGED_LINE}\n'
    + "a title that keeps going " * 100,  # 2,500 characters: a title holds 2,000
)
# A publisher transcript's speaker of 250 characters (an insight's speaker holds 200), with markup and a bidi
# override, and speech carrying terminal escapes (clear screen, colours, an OSC 8 hyperlink, BEL, NUL).
LONG_SPEAKER = (f"Dr. [link=https://{EVIL}]Eve[/link]\u202e " + "Verylongname " * 19)[:250]
HOSTILE_SPEECH = (
    "And so, my fellow Americans, \x1b[2J\x1b[31mask not\x1b[0m what your country can do for you,",
    f"ask what you can do \x1b]8;;https://{EVIL}\x07for your country.\x07\x00",
)


def _xml_text(value: str) -> str:
    """`value` as RSS element text that keeps its CR and LF (a parser folds a literal CR into LF)."""
    return escape(value, {"\r": "&#13;", "\n": "&#10;"})


def hostile_feed(shared: Path, host: FeedHost) -> tuple[str, list[str]]:
    """A feed as a hostile publisher writes it, served by `host`: the show and both episode titles carry
    `HOSTILE_SHOW` and `HOSTILE_TITLES`. The newest episode's publisher transcript (Podcasting 2.0 JSON) is
    JFK's speech with `HOSTILE_SPEECH`'s escapes, spoken by `LONG_SPEAKER`; the other is real speech for Whisper
    (Sense and Sensibility). Returns the feed's URL and the guids, newest first."""
    transcript = {
        "version": "1.0.0",
        "segments": [
            {"speaker": LONG_SPEAKER, "startTime": 0.0, "endTime": 4.5, "body": HOSTILE_SPEECH[0]},
            {"speaker": LONG_SPEAKER, "startTime": 4.5, "endTime": 11.0, "body": HOSTILE_SPEECH[1]},
        ],
    }
    transcript_url = host.add("/transcripts/ask-not.json", json.dumps(transcript), "application/json")
    jfk_name, jfk_mime = SPEECH[0]
    jfk = host.add(f"/audio/{jfk_name}", (shared / "data/audio" / jfk_name).read_bytes(), jfk_mime)
    book_name, book_mime = SPEECH[1]
    book = host.add(f"/audio/{Path(book_name).name}", (shared / "data/audio" / book_name).read_bytes(), book_mime)
    now = datetime.now(UTC)
    guids = ["hostile-ask-not", "hostile-sense-and-sensibility"]
    items = [
        f"""<item><title>{_xml_text(HOSTILE_TITLES[0])}</title><guid isPermaLink="false">{guids[0]}</guid>
<pubDate>{format_datetime(now - timedelta(hours=1))}</pubDate>
<description>{_xml_text("A speech. " * 4000)}</description>
<enclosure url="{jfk}" type="{jfk_mime}" length="1"/>
<podcast:transcript url="{transcript_url}" type="application/json"/></item>""",
        f"""<item><title>{_xml_text(HOSTILE_TITLES[1])}</title><guid isPermaLink="false">{guids[1]}</guid>
<pubDate>{format_datetime(now - timedelta(hours=2))}</pubDate>
<enclosure url="{book}" type="{book_mime}" length="1"/></item>""",
    ]
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">
<channel><title>{_xml_text(HOSTILE_SHOW)}</title><link>{host.base_url}/show</link>
<description>{_xml_text(HOSTILE_SHOW)}</description><language>en</language>
{"".join(items)}
</channel></rss>"""
    return host.add("/hostile.xml", xml, "application/rss+xml"), guids
