"""Feed parsing: RSS 2.0, RSS 0.9x and 1.0, Atom 1.0 and 0.3, the iTunes tags, Media RSS and the Podcasting 2.0
namespace, read from one element tree in one walk.

`feedxml` reads the document (strictly, then recovering the faults real feeds have). This module then decides
what a reader of the feed would see:

- the episode's media is the first audio enclosure among `<enclosure>`, Atom `rel="enclosure"` links,
  `media:content` (also inside `media:group`, `isDefault` first) and `podcast:alternateEnclosure`, else the
  first video one; cover art listed before the audio does not hide it;
- every URL is resolved against `xml:base` where given and the document's own URL; one that cannot be made an
  absolute http(s) URL is flagged on the item, never queued;
- `podcast:liveItem` stays out of the channel's fields and out of the episodes: it is reported in
  `live_items`, and becomes an episode when the publisher lists its recording as an `<item>`;
- an Atom entry's link is its alternate link, never its `urn:uuid:` id;
- dates go through `feeddates` (RFC 822 and ISO 8601 variants, non-English names), flagged when assumed;
- every text field is cleaned and bounded where it is read (`podbrief.text`): single-line fields are folded
  to one line without control, bidi-control or invisible characters, and nothing longer than what the
  event contract and the database accept gets through;
- what was dropped is counted by reason (`dropped`), and what was repaired is listed (`repairs`)."""

from __future__ import annotations

import functools
import mimetypes
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

from podbrief.errors import PermanentError
from podbrief.events.ids import episode_id
from podbrief.events.models import TranscriptLink
from podbrief.reasons import Reason
from podbrief.text import html_to_text, single_line
from podbrief_ingest.feeddates import parse_date
from podbrief_ingest.feedxml import Repair, read_document

PODCAST_NS = frozenset(
    {
        "https://podcastindex.org/namespace/1.0",
        "http://podcastindex.org/namespace/1.0",
        "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md",
    }
)
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# The Podcasting 2.0 spec derives podcast:guid from the feed URL with this uuid5 namespace.
PODCAST_GUID_NS = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
# Names a publisher may use in `<podcast:block id="...">` to opt out of this crawler specifically.
OUR_BLOCK_IDS = frozenset({"podbrief"})
MEDIA_EXTENSIONS = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/opus",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
}
GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", "application/x-unknown"})

# Bounds: what the event contract (podbrief.events.models) and the ingest tables accept, and sane maxima for
# the rest. A text field longer than its bound is cut with "…"; a URL longer than its bound is not a URL.
MAX_URL = 4096
MAX_SHOW_TITLE = 1000
MAX_TITLE = 2000
MAX_GUID = 2000
MAX_DESCRIPTION = 20_000
MAX_FEED_DESCRIPTION = 5000
MAX_MIME = 200
MAX_LANGUAGE = 35
MAX_PODCAST_GUID = 200
MAX_NAME = 200
MAX_ROLE = 100
MAX_EMAIL = 320
MAX_LABEL = 200
MAX_PERSONS = 50
MAX_TRANSCRIPTS = 20
MAX_ATTRS = 8
MAX_LENGTH_BYTES = 10**13  # an enclosure's declared length; beyond 10 TB it is noise
MAX_DURATION_S = 1_000_000.0
# Why an item was left out of the episodes (the `reason` label of the dropped-items metric).
DROP_REASONS: tuple[Reason, ...] = ("duplicate_guid", "no_guid_no_enclosure")


@dataclass(frozen=True)
class ParsedItem:
    guid: str
    episode_id: uuid.UUID
    title: str
    link: str | None
    description: str
    published_at: datetime | None
    enclosure_url: str | None
    enclosure_type: str | None
    enclosure_length: int | None
    duration_s: float | None
    transcripts: tuple[TranscriptLink, ...] = ()
    chapters_url: str | None = None
    chapters_type: str | None = None
    persons: tuple[dict[str, str], ...] = ()
    language: str | None = None
    # Why the enclosure cannot be fetched although the item has one (enclosure_url_not_absolute, ...).
    enclosure_problem: str | None = None
    # What was flagged while reading the item: date_assumed_utc, link_not_absolute, ...
    notes: tuple[str, ...] = ()

    def media_problem(self) -> str | None:
        """Why this item cannot be transcribed, or None."""
        if self.enclosure_problem:
            return self.enclosure_problem
        if not self.enclosure_url:
            return "no_enclosure"
        kind = media_type(self.enclosure_type, self.enclosure_url)
        if kind is None:
            return f"enclosure_not_audio ({self.enclosure_type or 'unknown type'})"
        return None


@dataclass(frozen=True)
class LiveItem:
    """A `podcast:liveItem`: a scheduled, running or ended live stream, not an episode."""

    guid: str
    title: str
    status: str
    start: datetime | None
    end: datetime | None
    enclosure_url: str | None


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    language: str | None
    description: str
    podcast_guid: str
    guid_declared: bool
    new_feed_url: str | None
    blocked: bool
    locked: bool
    locked_owner: str | None
    update_frequency: dict[str, str] | None
    persons: tuple[dict[str, str], ...]
    items: tuple[ParsedItem, ...]
    # Items left out, by reason (see DROP_REASONS).
    dropped: Mapping[Reason, int] = field(default_factory=dict)
    # What was repaired to read the document; empty when it was well-formed.
    repairs: tuple[Repair, ...] = ()
    live_items: tuple[LiveItem, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def skipped(self) -> int:
        return sum(self.dropped.values())

    @property
    def recovered(self) -> bool:
        return bool(self.repairs)


def podcast_guid_for(feed_url: str) -> str:
    """podcast:guid as the spec derives it: uuid5 of the URL without scheme and trailing slashes."""
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", feed_url.strip()).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NS, bare))


def media_type(declared: str | None, url: str | None, medium: str | None = None) -> str | None:
    """The enclosure's audio/video MIME type, guessing from the URL (or Media RSS's `medium`) when the declared
    one is missing or generic; None when it is not audio or video."""
    t = (declared or "").split(";", 1)[0].strip().lower()
    if t.startswith(("audio/", "video/")):
        return t
    if t and t not in GENERIC_TYPES:
        return None
    path = (url or "").split("?", 1)[0].split("#", 1)[0].lower()
    for ext, mime in MEDIA_EXTENSIONS.items():
        if path.endswith(ext):
            return mime
    guessed = mimetypes.guess_type(path)[0] or ""
    if guessed.startswith(("audio/", "video/")):
        return guessed
    m = (medium or "").strip().lower()
    if m in ("audio", "video"):
        return f"{m}/unknown"
    return None


# Namespaces, grouped: a tag is read by (group, local name) ---------------------------------------------------
_GROUPS = {
    "": "rss",
    "http://purl.org/rss/1.0": "rss",
    "http://my.netscape.com/rdf/simple/0.9": "rss",
    "http://backend.userland.com/rss2": "rss",
    "http://blogs.law.harvard.edu/tech/rss": "rss",
    "http://www.w3.org/2005/atom": "atom",
    "http://purl.org/atom/ns#": "atom",
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "https://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "http://search.yahoo.com/mrss": "media",
    "https://search.yahoo.com/mrss": "media",
    "http://purl.org/rss/1.0/modules/content": "content",
    "http://purl.org/dc/elements/1.1": "dc",
    "http://purl.org/dc/terms": "dc",
    "http://www.w3.org/1999/02/22-rdf-syntax-ns#": "rdf",
    **{ns.lower().rstrip("/"): "podcast" for ns in PODCAST_NS},
}


@functools.lru_cache(maxsize=4096)
def _classify(tag: str) -> tuple[str, str]:
    """(namespace group or "other", local name) of an element tag."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return _GROUPS.get(ns.lower().rstrip("/"), "other"), local
    if ":" in tag:  # a prefixed name lxml kept without a namespace (recover mode)
        prefix, _, local = tag.partition(":")
        return {"itunes": "itunes", "podcast": "podcast", "media": "media", "atom": "atom"}.get(
            prefix.lower(), "other"
        ), local
    return "rss", tag


def _children(el: Element) -> Iterator[tuple[str, str, Element]]:
    for child in el:
        tag = child.tag
        if isinstance(tag, str):
            group, local = _classify(tag)
            yield group, local, child


def _text(el: Element | None) -> str:
    if el is None:
        return ""
    if len(el) == 0:
        return (el.text or "").strip()
    return "".join(el.itertext()).strip()


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1")


def _duration(value: str | None) -> float | None:
    s = (value or "").strip()
    if not s:
        return None
    try:
        parts = [float(p) for p in s.split(":")]
    except ValueError:
        return None
    if len(parts) > 3 or any(p < 0 or p != p for p in parts):
        return None
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total if total <= MAX_DURATION_S else None


def _length(value: str | None) -> int | None:
    s = (value or "").strip().replace(",", "")
    if not s.isdigit():
        return None
    n = int(s)
    return n if n <= MAX_LENGTH_BYTES else None


def _base(parent: str, el: Element) -> str:
    given = el.get(XML_BASE)
    if not given:
        return parent
    return urljoin(parent, "".join(given.split())) if parent else given.strip()


def _absolute(raw: str | None, base: str) -> tuple[str | None, str | None]:
    """(absolute http(s) URL, None) or (None, why not) for a URL as a feed writes it; (None, None) if empty.
    Tabs and line breaks inside are dropped and spaces percent-encoded, as browsers do."""
    s = (raw or "").strip()
    if not s:
        return None, None
    s = re.sub(r"[\t\r\n]", "", s).replace(" ", "%20")
    try:
        url = urljoin(base, s) if base else s
        parts = urlsplit(url)
    except ValueError:
        return None, "not_a_url"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None, "not_absolute"
    if len(url) > MAX_URL:
        return None, "too_long"
    return url, None


def _language(value: str | None) -> str | None:
    s = single_line(value).replace("_", "-")
    if not s or len(s) > MAX_LANGUAGE or not re.fullmatch(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*", s):
        return None
    return s.lower()


def _mime(value: str | None) -> str | None:
    return single_line(value, MAX_MIME).lower() or None


def _title(el: Element, group: str) -> str:
    if group == "atom" and (el.get("type") or "").lower() in ("html", "text/html"):
        return html_to_text(_text(el))
    return _text(el)


def _atom_link(el: Element, base: str) -> tuple[str, str | None, str, str | None, str | None]:
    """(rel, absolute href or None, type, length, why not absolute)."""
    rel = (el.get("rel") or "alternate").strip().lower()
    href, why = _absolute(el.get("href"), _base(base, el))
    return rel, href, (el.get("type") or "").strip(), el.get("length"), why


@dataclass
class _Media:
    raw: str
    url: str | None
    why: str | None
    type: str | None
    length: int | None
    duration: float | None
    medium: str | None = None

    def kind(self) -> str:
        return media_type(self.type, self.url or self.raw, self.medium) or ""


def _media_content(el: Element, base: str) -> _Media | None:
    raw = (el.get("url") or "").strip()
    if not raw:
        return None
    url, why = _absolute(raw, _base(base, el))
    return _Media(
        raw,
        url,
        why,
        el.get("type"),
        _length(el.get("fileSize")),
        _duration(el.get("duration")),
        el.get("medium"),
    )


def _choose(candidates: list[_Media]) -> _Media | None:
    """The audio enclosure if there is one, else the video one, else the first listed (so the item says what
    it has instead of passing for an audio-less one). Fetchable URLs first within each kind."""
    for want in ("audio/", "video/"):
        of_kind = [c for c in candidates if c.kind().startswith(want)]
        usable = [c for c in of_kind if c.url]
        if usable or of_kind:
            return (usable or of_kind)[0]
    return candidates[0] if candidates else None


def _person(el: Element, base: str) -> dict[str, str] | None:
    name = single_line(_text(el), MAX_NAME)
    if not name:
        return None
    person = {"name": name}
    for attr in ("role", "group"):
        value = single_line(el.get(attr), MAX_ROLE)
        if value:
            person[attr] = value
    for attr in ("img", "href"):
        url, _ = _absolute(el.get(attr), _base(base, el))
        if url:
            person[attr] = url
    return person


@dataclass
class _ItemReader:
    """One item's fields, gathered in one pass over its children."""

    base: str
    language: str | None
    titles: dict[str, str] = field(default_factory=dict)
    guid: str = ""
    # An RSS <guid> is a permalink unless it says isPermaLink="false" (RSS 2.0); an Atom <id> never is.
    guid_is_link: bool = False
    rss_link: str | None = None
    atom_link: str | None = None
    link_why: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    dates: dict[str, str] = field(default_factory=dict)
    media: list[tuple[int, _Media]] = field(default_factory=list)
    duration: float | None = None
    transcripts: list[TranscriptLink] = field(default_factory=list)
    chapters: tuple[str | None, str | None] | None = None
    persons: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def read(self, item: Element) -> None:
        rdf_about = item.get("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about")
        for group, local, el in _children(item):
            key = (group, local)
            if group in ("rss", "atom", "itunes", "dc") and local == "title":
                self.titles.setdefault(group, _title(el, group))
            elif key == ("rss", "guid") or key == ("atom", "id"):
                if not self.guid:
                    self.guid = _text(el)
                    self.guid_is_link = local == "guid" and (el.get("isPermaLink") or "true").strip().lower() != "false"
            elif key == ("rss", "link"):
                if self.rss_link is None:
                    self.rss_link = _text(el) or el.get("href") or ""
            elif key == ("atom", "link"):
                self._atom_link(el)
            elif key == ("rss", "enclosure"):
                raw = (el.get("url") or el.get("href") or "").strip()
                if raw:
                    url, why = _absolute(raw, _base(self.base, el))
                    self.media.append((0, _Media(raw, url, why, el.get("type"), _length(el.get("length")), None)))
            elif group == "media" and local == "content":
                found = _media_content(el, self.base)
                if found:
                    self.media.append((2, found))
            elif group == "media" and local == "group":
                self._media_group(el)
            elif group in ("rss", "content", "itunes", "atom", "media") and local in (
                "description",
                "encoded",
                "summary",
                "content",
            ):
                self.descriptions.setdefault(f"{group}:{local}", _text(el))
            elif local in ("pubDate", "published", "issued", "date", "updated", "modified", "created") and group in (
                "rss",
                "atom",
                "dc",
            ):
                self.dates.setdefault(local, _text(el))
            elif key == ("itunes", "duration"):
                self.duration = _duration(_text(el))
            elif group == "podcast":
                self._podcast(local, el)
        if not self.guid and rdf_about:
            self.guid = rdf_about.strip()

    def _atom_link(self, el: Element) -> None:
        rel, href, kind, length, why = _atom_link(el, self.base)
        if rel == "enclosure":
            raw = (el.get("href") or "").strip()
            if raw:
                self.media.append((1, _Media(raw, href, why, kind or None, _length(length), None)))
        elif rel == "alternate" and self.atom_link is None:
            if href:
                self.atom_link = href
            elif why and (el.get("href") or "").strip():
                self.link_why = why

    def _media_group(self, group_el: Element) -> None:
        found = [
            (el.get("isDefault", "").strip().lower() != "true", _media_content(el, self.base))
            for g, local, el in _children(group_el)
            if g == "media" and local == "content"
        ]
        for _, media in sorted(((d, m) for d, m in found if m is not None), key=lambda p: p[0]):
            self.media.append((3, media))

    def _podcast(self, local: str, el: Element) -> None:
        base = _base(self.base, el)
        if local == "transcript" and len(self.transcripts) < MAX_TRANSCRIPTS:
            url, why = _absolute(el.get("url"), base)
            if url:
                self.transcripts.append(
                    TranscriptLink(
                        url=url,
                        type=_mime(el.get("type")) or "text/plain",
                        language=_language(el.get("language")) or self.language,
                        rel=single_line(el.get("rel"), MAX_ROLE) or None,
                    )
                )
            elif why:
                self.notes.append("transcript_url_not_absolute")
        elif local == "chapters" and self.chapters is None:
            url, why = _absolute(el.get("url"), base)
            if why:
                self.notes.append("chapters_url_not_absolute")
            self.chapters = (url, _mime(el.get("type")))
        elif local == "person" and len(self.persons) < MAX_PERSONS:
            person = _person(el, self.base)
            if person:
                self.persons.append(person)
        elif local == "alternateEnclosure":
            for g, name, source in _children(el):
                if g == "podcast" and name == "source":
                    raw = (source.get("uri") or "").strip()
                    if raw:
                        url, why = _absolute(raw, _base(base, source))
                        self.media.append(
                            (4, _Media(raw, url, why, source.get("contentType") or el.get("type"), None, None))
                        )

    def title(self) -> str:
        for group in ("rss", "atom", "itunes", "dc"):
            value = single_line(self.titles.get(group), MAX_TITLE)
            if value:
                return value
        return "(untitled)"

    def link(self) -> str | None:
        raw = self.rss_link
        if raw:
            url, why = _absolute(raw, self.base)
            if url:
                return url
            self.notes.append(f"link_{why}")
            return None
        if self.atom_link:
            return self.atom_link
        if self.guid_is_link and self.guid.lower().startswith(("http://", "https://")):
            return _absolute(self.guid, "")[0]
        if self.link_why:
            self.notes.append(f"link_{self.link_why}")
        return None

    def description(self) -> str:
        for key in (
            "rss:description",
            "content:encoded",
            "itunes:summary",
            "atom:summary",
            "atom:content",
            "media:description",
        ):
            value = self.descriptions.get(key)
            if value:
                return html_to_text(value, MAX_DESCRIPTION)
        return ""

    def published(self) -> datetime | None:
        for key in ("pubDate", "published", "issued", "date", "updated", "modified", "created"):
            raw = self.dates.get(key)
            if raw:
                when, flag = parse_date(raw)
                if flag:
                    self.notes.append(flag)
                if when is not None:
                    return when
        return None


def parse_feed(body: bytes, feed_url: str, *, base_url: str | None = None, charset: str | None = None) -> ParsedFeed:
    """Parse a feed document. `feed_url` is the feed's identity (episode ids hash it); `base_url` is where the
    document was fetched from (relative URLs resolve against it; default `feed_url`); `charset` is the HTTP
    Content-Type charset, if any.

    Raises PermanentError, reason: empty | not_a_feed | xml_entities | malformed_xml | no_items_or_title."""
    doc = read_document(body, charset=charset)
    root = doc.root
    base = _base(base_url or feed_url, root) if isinstance(root.tag, str) else base_url or feed_url
    channel, xml_items = _channel_and_items(root)
    ch_base = _base(base, channel) if channel is not root else base
    ch = _read_channel(channel, ch_base)
    language = ch["language"] or _language(root.get(XML_LANG)) or _language(channel.get(XML_LANG))
    title = single_line(ch["title"], MAX_SHOW_TITLE)
    if not title and not xml_items:
        raise PermanentError("the document has neither a title nor any items", reason="no_items_or_title")

    items: list[ParsedItem] = []
    dropped: Counter[Reason] = Counter()
    seen: set[uuid.UUID] = set()
    for el in xml_items:
        reader = _ItemReader(_base(ch_base, el), language)
        reader.read(el)
        chosen = _choose([m for _, m in sorted(reader.media, key=lambda p: p[0])])
        guid = reader.guid
        try:
            eid = episode_id(feed_url, guid, (chosen.url or chosen.raw) if chosen else None)
        except ValueError:
            dropped["no_guid_no_enclosure"] += 1
            continue
        if eid in seen:
            # Duplicate guids inside one document: the first (newest, by feed convention) wins.
            dropped["duplicate_guid"] += 1
            continue
        seen.add(eid)
        enclosure_problem = None
        if chosen is not None and chosen.url is None:
            enclosure_problem = f"enclosure_url_{chosen.why or 'not_absolute'}"
        chapters_url, chapters_type = reader.chapters or (None, None)
        items.append(
            ParsedItem(
                guid=(guid or (chosen.url or chosen.raw if chosen else ""))[:MAX_GUID],
                episode_id=eid,
                title=reader.title(),
                link=reader.link(),
                description=reader.description(),
                published_at=reader.published(),
                enclosure_url=chosen.url if chosen else None,
                enclosure_type=_mime(chosen.type) if chosen else None,
                enclosure_length=chosen.length if chosen else None,
                duration_s=reader.duration if reader.duration is not None else (chosen.duration if chosen else None),
                transcripts=tuple(reader.transcripts),
                chapters_url=chapters_url,
                chapters_type=chapters_type,
                persons=tuple(reader.persons),
                language=language,
                enclosure_problem=enclosure_problem,
                notes=tuple(dict.fromkeys(reader.notes)),
            )
        )
    declared_guid = single_line(ch["podcast_guid"])
    warnings = list(ch["warnings"])
    if len(declared_guid) > MAX_PODCAST_GUID:
        warnings.append("podcast_guid_too_long")
        declared_guid = ""
    return ParsedFeed(
        title=title or "(untitled feed)",
        link=ch["link"],
        language=language,
        description=html_to_text(ch["description"], MAX_FEED_DESCRIPTION),
        podcast_guid=declared_guid or podcast_guid_for(feed_url),
        guid_declared=bool(declared_guid),
        new_feed_url=ch["new_feed_url"],
        blocked=ch["blocked"],
        locked=ch["locked"],
        locked_owner=ch["locked_owner"],
        update_frequency=ch["update_frequency"],
        persons=tuple(ch["persons"]),
        items=tuple(items),
        dropped=dict(dropped),
        repairs=doc.repairs,
        live_items=tuple(ch["live_items"]),
        warnings=tuple(warnings),
    )


def _channel_and_items(root: Element) -> tuple[Element, list[Element]]:
    if not isinstance(root.tag, str):
        raise PermanentError("the document has no root element", reason="not_a_feed")
    group, name = _classify(root.tag)
    if name == "rss":
        channel = next((el for g, n, el in _children(root) if n == "channel" and g == "rss"), None)
        if channel is None:
            raise PermanentError("RSS document without a <channel>", reason="not_a_feed")
        # Items belong in the channel; a few generators close the channel early and list them after it.
        items = [el for g, n, el in _children(channel) if n == "item" and g == "rss"]
        items += [el for g, n, el in _children(root) if n == "item" and g == "rss"]
        return channel, items
    if name == "feed" and group == "atom":
        return root, [el for g, n, el in _children(root) if n == "entry" and g == "atom"]
    if name == "RDF":
        channel = next((el for g, n, el in _children(root) if n == "channel" and g == "rss"), root)
        return channel, [el for g, n, el in _children(root) if n == "item" and g == "rss"]
    if name.lower() == "html":
        raise PermanentError("this is an HTML page, not a feed", reason="not_a_feed")
    raise PermanentError(f"<{name[:100]}> is not a feed (expected RSS or Atom)", reason="not_a_feed")


def _read_channel(channel: Element, base: str) -> dict[str, Any]:
    """The channel's own fields, from its direct children only: a `podcast:liveItem`'s link or description is
    never the channel's."""
    titles: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    links: dict[str, str] = {}
    out: dict[str, Any] = {
        "language": None,
        "podcast_guid": "",
        "new_feed_url": None,
        "blocked": False,
        "locked": False,
        "locked_owner": None,
        "update_frequency": None,
        "persons": [],
        "live_items": [],
        "warnings": [],
    }
    for group, local, el in _children(channel):
        if local == "title" and group in ("rss", "atom", "itunes", "dc"):
            titles.setdefault(group, _title(el, group))
        elif (group, local) == ("rss", "link"):
            links.setdefault("rss", _text(el))
        elif (group, local) == ("atom", "link"):
            rel, href, _, _, _ = _atom_link(el, base)
            if rel == "alternate" and href:
                links.setdefault("atom", href)
        elif local in ("description", "subtitle", "summary", "tagline") and group in ("rss", "atom", "itunes"):
            descriptions.setdefault(f"{group}:{local}", _text(el))
        elif local == "language" and group in ("rss", "dc") and out["language"] is None:
            out["language"] = _language(_text(el))
        elif (group, local) == ("itunes", "new-feed-url") and out["new_feed_url"] is None:
            url, why = _absolute(_text(el), base)
            out["new_feed_url"] = url
            if why:
                out["warnings"].append(f"new_feed_url_{why}")
        elif group == "podcast":
            _channel_podcast(local, el, base, out)
    for source in ("rss", "atom"):
        raw = links.get(source)
        if raw:
            url, why = _absolute(raw, base)
            if url:
                out["link"] = url
                break
            out["warnings"].append(f"link_{why}")
    out.setdefault("link", None)
    out["title"] = next((t for g in ("rss", "atom", "itunes", "dc") if (t := titles.get(g))), "")
    out["description"] = next(
        (
            d
            for k in ("rss:description", "itunes:summary", "atom:subtitle", "atom:tagline", "itunes:subtitle")
            if (d := descriptions.get(k))
        ),
        "",
    )
    return out


def _channel_podcast(local: str, el: Element, base: str, out: dict[str, Any]) -> None:
    if local == "guid" and not out["podcast_guid"]:
        out["podcast_guid"] = _text(el)
    elif local == "block":
        target = (el.get("id") or "").strip().lower()
        if _yes(_text(el)) and (not target or target in OUR_BLOCK_IDS):
            out["blocked"] = True
    elif local == "locked" and not out["locked"]:
        out["locked"] = _yes(_text(el))
        out["locked_owner"] = single_line(el.get("owner"), MAX_EMAIL) or None
    elif local == "updateFrequency" and out["update_frequency"] is None:
        freq = {single_line(k, 32): single_line(v, MAX_LABEL) for k, v in list(el.attrib.items())[:MAX_ATTRS]}
        freq["label"] = single_line(_text(el), MAX_LABEL)
        out["update_frequency"] = freq
    elif local == "person" and len(out["persons"]) < MAX_PERSONS:
        person = _person(el, base)
        if person:
            out["persons"].append(person)
    elif local == "liveItem":
        out["live_items"].append(_live_item(el, base))


def _live_item(el: Element, base: str) -> LiveItem:
    reader = _ItemReader(_base(base, el), None)
    reader.read(el)
    chosen = _choose([m for _, m in sorted(reader.media, key=lambda p: p[0])])
    return LiveItem(
        guid=reader.guid[:MAX_GUID],
        title=reader.title(),
        status=single_line(el.get("status"), 32).lower() or "pending",
        start=parse_date(el.get("start"))[0],
        end=parse_date(el.get("end"))[0],
        enclosure_url=chosen.url if chosen else None,
    )


def newest_first(items: tuple[ParsedItem, ...]) -> list[ParsedItem]:
    """Items by publication date, newest first; undated items keep document order after dated ones."""
    indexed = list(enumerate(items))
    indexed.sort(
        key=lambda p: (
            p[1].published_at is None,
            -(p[1].published_at.timestamp() if p[1].published_at else 0),
            p[0],
        )
    )
    return [it for _, it in indexed]


__all__ = [
    "DROP_REASONS",
    "LiveItem",
    "ParsedFeed",
    "ParsedItem",
    "media_type",
    "newest_first",
    "parse_feed",
    "podcast_guid_for",
]
