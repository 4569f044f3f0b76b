"""Bundled offline demo data for ``podbrief run``.

Five short synthetic episodes from five fictional shows, with overlapping
themes (small language models on phones, home batteries and heat pumps,
sleep and productivity) so that insight extraction and clustering have
something to link across shows without any network access.

* ``episodes.json`` holds the scripts and metadata (the source of truth), including each episode's host and
  guest, published as ``podcast:person`` tags so extraction can say who said what.
* ``audio/<guid>.opus`` is the Ogg/Opus rendering of each script (16 kHz mono,
  espeak-ng voices), and ``audio/manifest.json`` its size, sha256, duration,
  segment times and tiny.en word error rate.  Regenerate both with
  ``python scripts/render_demo.py``.

:func:`render_feed` turns one show into an RSS 2.0 + iTunes + Podcasting 2.0
feed whose enclosures point at ``<base_url>/audio/<file>``, so a local HTTP
server over this directory looks like a real podcast host.

Nothing is read at import time.
"""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "AUDIO_EXT",
    "AUDIO_MIME_TYPE",
    "audio_path",
    "episodes",
    "manifest",
    "render_feed",
    "shows",
]

DEMO_DIR = Path(__file__).resolve().parent
AUDIO_DIR = DEMO_DIR / "audio"
EPISODES_FILE = DEMO_DIR / "episodes.json"
MANIFEST_FILE = AUDIO_DIR / "manifest.json"

# Keep in sync with scripts/render_demo.py.
AUDIO_EXT = ".opus"
AUDIO_MIME_TYPE = "audio/ogg"  # RFC 7845: Ogg/Opus files are served as audio/ogg

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST_NS = "https://podcastindex.org/namespace/1.0"
# Podcasting 2.0 <podcast:guid> namespace for UUIDv5 feed GUIDs.
_PODCAST_GUID_NS = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
_SAFE_GUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def episodes() -> list[dict[str, Any]]:
    """All demo episodes (fresh objects on every call), in file order."""
    data: list[dict[str, Any]] = json.loads(EPISODES_FILE.read_text(encoding="utf-8"))
    return data


def shows() -> list[str]:
    """Slugs of the demo shows, in order of first appearance."""
    return list(dict.fromkeys(ep["show_slug"] for ep in episodes()))


def audio_path(episode: Mapping[str, Any]) -> Path:
    """Path of the bundled audio file for ``episode`` (a dict from :func:`episodes`)."""
    guid = episode["guid"]
    if not _SAFE_GUID.match(guid):
        raise ValueError(f"episode guid {guid!r} is not usable as a file name")
    return AUDIO_DIR / f"{guid}{AUDIO_EXT}"


def manifest() -> dict[str, Any]:
    """The render manifest (``audio/manifest.json``); empty if it is missing."""
    try:
        data: dict[str, Any] = json.loads(MANIFEST_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data


def _published(episode: Mapping[str, Any]) -> datetime:
    dt = datetime.fromisoformat(episode["published"].replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _language(voice: str) -> str:
    """RSS <language> from an espeak voice name: 'en-gb+m1' -> 'en-gb', 'en' -> 'en'."""
    return voice.split("+", 1)[0].lower() or "en"


def _podcast_guid(show_slug: str) -> str:
    # The Podcasting 2.0 spec derives the GUID from the feed URL.  The demo feeds
    # are served from arbitrary local addresses, so use a fixed host-independent
    # pseudo-URL instead: the GUID then stays stable across runs and ports.
    return str(uuid.uuid5(_PODCAST_GUID_NS, f"demo.podbrief.invalid/feeds/{show_slug}"))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def render_feed(base_url: str, show_slug: str) -> str:
    """RSS 2.0 feed (with iTunes and Podcasting 2.0 tags) for one demo show.

    Enclosure URLs are ``<base_url>/audio/<file>``; lengths come from the
    bundled files and durations from ``audio/manifest.json``.  Items are
    newest first.  Raises ``KeyError`` for an unknown ``show_slug``.
    """
    eps = [ep for ep in episodes() if ep["show_slug"] == show_slug]
    if not eps:
        raise KeyError(f"unknown demo show {show_slug!r}; known: {', '.join(shows())}")
    eps.sort(key=_published, reverse=True)
    durations = {f["guid"]: f.get("duration_s") for f in manifest().get("files", [])}
    base = base_url.rstrip("/")
    show = eps[0]["show"]

    ET.register_namespace("itunes", ITUNES_NS)
    ET.register_namespace("podcast", PODCAST_NS)
    itunes = f"{{{ITUNES_NS}}}"
    podcast = f"{{{PODCAST_NS}}}"

    rss = ET.Element("rss", {"version": "2.0"})
    channel = _sub(rss, "channel")
    _sub(channel, "title", show)
    _sub(channel, "link", f"{base}/shows/{quote(show_slug)}")
    _sub(channel, "description", f"{show}: a demo podcast bundled with podbrief for offline runs.")
    _sub(channel, "language", _language(eps[0]["voice"]))
    _sub(channel, "generator", "podbrief demo")
    _sub(channel, "lastBuildDate", format_datetime(_published(eps[0]), usegmt=True))
    _sub(channel, podcast + "guid", _podcast_guid(show_slug))
    _sub(channel, podcast + "medium", "podcast")
    _sub(channel, itunes + "author", show)
    _sub(channel, itunes + "summary", f"{show}: a demo podcast bundled with podbrief for offline runs.")
    _sub(channel, itunes + "type", "episodic")
    _sub(channel, itunes + "explicit", "false")

    for ep in eps:
        path = audio_path(ep)
        item = _sub(channel, "item")
        _sub(item, "title", ep["title"])
        _sub(item, "guid", ep["guid"], isPermaLink="false")
        _sub(item, "pubDate", format_datetime(_published(ep), usegmt=True))
        _sub(item, "description", ep["description"])
        _sub(
            item,
            "enclosure",
            url=f"{base}/audio/{quote(path.name)}",
            length=str(path.stat().st_size),
            type=AUDIO_MIME_TYPE,
        )
        duration = durations.get(ep["guid"])
        if duration is not None:
            _sub(item, itunes + "duration", str(round(duration)))
        _sub(item, itunes + "episodeType", "full")
        _sub(item, itunes + "explicit", "false")
        # Host and guest, as Podcasting 2.0 names them (item-level tags replace the channel's).
        for person in ep.get("people", []):
            attrs = {"role": person.get("role", "host")}
            if person.get("group"):
                attrs["group"] = person["group"]
            _sub(item, podcast + "person", person["name"], **attrs)

    ET.indent(rss, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(rss, encoding="unicode") + "\n"
