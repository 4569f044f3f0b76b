"""Feed parsing: RSS 2.0, Atom, RSS 1.0, the iTunes tags and the Podcasting 2.0 namespace.

The bytes go through defusedxml first, which refuses entity expansion (billion laughs), external entities and
malformed XML before anything else looks at them. feedparser then reads the common fields (dates, Atom vs RSS,
encodings). feedparser keeps only one `podcast:*` element of a kind per item (a feed with SRT and VTT
transcripts loses one), so the Podcasting 2.0 tags are read from the defusedxml tree instead."""

from __future__ import annotations

import calendar
import html.entities
import mimetypes
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import feedparser
from defusedxml import DefusedXmlException
from podbrief.errors import PermanentError
from podbrief.events.ids import episode_id
from podbrief.events.models import TranscriptLink

PODCAST_NS = frozenset(
    {
        "https://podcastindex.org/namespace/1.0",
        "http://podcastindex.org/namespace/1.0",
        "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md",
    }
)
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ATOM_NS = "http://www.w3.org/2005/Atom"
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

    def media_problem(self) -> str | None:
        """Why this item cannot be transcribed, or None."""
        if not self.enclosure_url:
            return "no_enclosure"
        kind = media_type(self.enclosure_type, self.enclosure_url)
        if kind is None:
            return f"enclosure_not_audio ({self.enclosure_type or 'unknown type'})"
        return None


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
    skipped: int = 0
    warnings: tuple[str, ...] = field(default=())


def podcast_guid_for(feed_url: str) -> str:
    """podcast:guid as the spec derives it: uuid5 of the URL without scheme and trailing slashes."""
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", feed_url.strip()).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NS, bare))


def media_type(declared: str | None, url: str | None) -> str | None:
    """The enclosure's audio/video MIME type, guessing from the URL when the declared one is missing or
    generic; None when it is not audio or video."""
    t = (declared or "").split(";", 1)[0].strip().lower()
    if t.startswith(("audio/", "video/")):
        return t
    if t and t not in ("application/octet-stream", "binary/octet-stream", "application/x-unknown"):
        return None
    path = (url or "").split("?", 1)[0].split("#", 1)[0].lower()
    for ext, mime in MEDIA_EXTENSIONS.items():
        if path.endswith(ext):
            return mime
    guessed = mimetypes.guess_type(path)[0] or ""
    return guessed if guessed.startswith(("audio/", "video/")) else None


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return "", tag


def _podcast(el: Element, name: str) -> list[Element]:
    out = []
    for child in el:
        if not isinstance(child.tag, str):
            continue
        ns, local = _local(child.tag)
        if local == name and ns in PODCAST_NS:
            out.append(child)
    return out


def _child(el: Element, ns: str, name: str) -> Element | None:
    return el.find(f"{{{ns}}}{name}")


def _text(el: Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "1")


def _duration(value: Any) -> float | None:
    if value is None:
        return None
    s = str(value).strip()
    if not s:
        return None
    try:
        parts = [float(p) for p in s.split(":")]
    except ValueError:
        return None
    if len(parts) > 3 or any(p < 0 for p in parts):
        return None
    total = 0.0
    for p in parts:
        total = total * 60 + p
    return total


def _when(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        t = entry.get(key)
        if t:
            try:
                return datetime.fromtimestamp(calendar.timegm(t), UTC)
            except (OverflowError, ValueError):
                continue
    return None


def _persons(el: Element) -> tuple[dict[str, str], ...]:
    out = []
    for p in _podcast(el, "person"):
        name = _text(p)
        if name:
            person = {"name": name}
            for attr in ("role", "group", "img", "href"):
                if p.get(attr):
                    person[attr] = str(p.get(attr))
            out.append(person)
    return tuple(out)


def _safe_tree(body: bytes) -> tuple[Element, bytes]:
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise PermanentError("the feed is empty", reason="empty")
    head = stripped[:512].lower()
    if head.startswith((b"<!doctype html", b"<html")) or (b"<html" in head and b"<rss" not in head):
        raise PermanentError("this is an HTML page, not a feed", reason="not_a_feed")
    try:
        return _strict_tree(body), body
    except ParseError as exc:
        # Feeds in the wild carry HTML entities (&nbsp;), bare ampersands, whitespace before the declaration.
        # Those faults are repaired, once; the repaired document still goes through the same guarded parser.
        repaired = _repair_entities(body)
        if repaired == body:
            raise PermanentError(f"the feed is not well-formed XML: {exc}", reason="malformed_xml") from exc
        try:
            return _strict_tree(repaired), repaired
        except ParseError:
            raise PermanentError(f"the feed is not well-formed XML: {exc}", reason="malformed_xml") from exc


def _strict_tree(body: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PermanentError(
            f"the feed declares XML entities or external references ({type(exc).__name__}); "
            "refused as a possible XML bomb",
            reason="xml_entities",
        ) from exc
    except (ValueError, LookupError) as exc:
        raise PermanentError(f"the feed cannot be decoded: {exc}", reason="malformed_xml") from exc
    return root


_XML_ENTITY = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)([A-Za-z][A-Za-z0-9]{0,31};)?")


def _repair_entities(body: bytes) -> bytes:
    # Whitespace before the XML declaration is another common fault (templating engines emit a newline).
    body = body.lstrip(b"\xef\xbb\xbf").lstrip()

    def fix(m: re.Match[bytes]) -> bytes:
        name = m.group(1)
        if name:
            char = html.entities.html5.get(name.decode("ascii"))
            if char is not None:
                return b"".join(b"&#%d;" % ord(c) for c in char)
        return b"&amp;" + (name or b"")

    return _XML_ENTITY.sub(fix, body)


def _channel_and_items(root: Element) -> tuple[Element, list[Element]]:
    ns, name = _local(root.tag)
    if name == "rss":
        channel = root.find("channel")
        if channel is None:
            raise PermanentError("RSS document without a <channel>", reason="not_a_feed")
        return channel, channel.findall("item")
    if name == "feed" and ns == ATOM_NS:
        return root, root.findall(f"{{{ATOM_NS}}}entry")
    if name == "RDF":
        return root, [el for el in root if isinstance(el.tag, str) and _local(el.tag)[1] == "item"]
    if name == "html":
        raise PermanentError("this is an HTML page, not a feed", reason="not_a_feed")
    raise PermanentError(f"<{name}> is not a feed (expected RSS or Atom)", reason="not_a_feed")


def _transcripts(el: Element, base: str | None) -> tuple[TranscriptLink, ...]:
    out = []
    for t in _podcast(el, "transcript"):
        url = (t.get("url") or "").strip()
        if not url or len(url) > 4096:
            continue
        out.append(
            TranscriptLink(
                url=url,
                type=(t.get("type") or "").strip()[:200] or "text/plain",
                language=t.get("language") or base,
                rel=t.get("rel"),
            )
        )
    return tuple(out)


def parse_feed(body: bytes, feed_url: str) -> ParsedFeed:
    """Parse a feed document. `feed_url` is the feed's identity (episode ids hash it).

    Raises PermanentError, reason: empty | not_a_feed | xml_entities | malformed_xml | no_items_or_title."""
    root, body = _safe_tree(body)
    channel, xml_items = _channel_and_items(root)
    parsed = feedparser.parse(body, sanitize_html=True, resolve_relative_uris=False)
    feed = parsed.feed
    title = str(feed.get("title") or "").strip()
    entries = list(parsed.entries)
    if not title and not entries:
        raise PermanentError("the document has neither a title nor any items", reason="no_items_or_title")
    language = str(feed.get("language") or "").strip() or None
    warnings: list[str] = []
    # Both walk the document in order; when they disagree (feedparser tolerating something), guid matching
    # is the fallback so Podcasting 2.0 tags never land on the wrong item.
    by_index = len(xml_items) == len(entries)
    if not by_index:
        warnings.append(f"item count mismatch: xml={len(xml_items)} feedparser={len(entries)}")
    xml_by_guid: dict[str, Element] = {}
    for xml_item in xml_items:
        g = _text(xml_item.find("guid")) or _text(_child(xml_item, ATOM_NS, "id"))
        if g:
            xml_by_guid[g] = xml_item

    guid_el = _podcast(channel, "guid")
    declared_guid = _text(guid_el[0]) if guid_el else ""
    block = False
    for b in _podcast(channel, "block"):
        target = (b.get("id") or "").strip().lower()
        if _yes(_text(b)) and (not target or target in OUR_BLOCK_IDS):
            block = True
    locked_el = _podcast(channel, "locked")
    freq_el = _podcast(channel, "updateFrequency")
    update_frequency = None
    if freq_el:
        update_frequency = {k: str(v) for k, v in freq_el[0].attrib.items()}
        update_frequency["label"] = _text(freq_el[0])
    new_url = _text(_child(channel, ITUNES_NS, "new-feed-url")) or None

    items: list[ParsedItem] = []
    skipped = 0
    seen: set[uuid.UUID] = set()
    for i, entry in enumerate(entries):
        guid = str(entry.get("id") or "").strip()
        el: Element | None = xml_items[i] if by_index else xml_by_guid.get(guid)
        enclosure = next(iter(entry.get("enclosures") or []), None)
        enc_url = str(enclosure.get("href") or "").strip() or None if enclosure else None
        enc_type = str(enclosure.get("type") or "").strip() or None if enclosure else None
        enc_len: int | None = None
        if enclosure and str(enclosure.get("length") or "").strip().isdigit():
            enc_len = int(str(enclosure.get("length")).strip())
        try:
            eid = episode_id(feed_url, guid, enc_url)
        except ValueError:
            skipped += 1
            continue
        if eid in seen:
            # Duplicate guids inside one document: the first (newest, by feed convention) wins.
            skipped += 1
            continue
        seen.add(eid)
        chapters = _podcast(el, "chapters") if el is not None else []
        items.append(
            ParsedItem(
                guid=guid or (enc_url or ""),
                episode_id=eid,
                title=str(entry.get("title") or "").strip() or "(untitled)",
                link=str(entry.get("link") or "").strip() or None,
                description=str(entry.get("summary") or "").strip(),
                published_at=_when(entry),
                enclosure_url=enc_url,
                enclosure_type=enc_type,
                enclosure_length=enc_len,
                duration_s=_duration(entry.get("itunes_duration")),
                transcripts=_transcripts(el, language) if el is not None else (),
                chapters_url=(chapters[0].get("url") or "").strip() or None if chapters else None,
                chapters_type=chapters[0].get("type") if chapters else None,
                persons=_persons(el) if el is not None else (),
                language=language,
            )
        )
    return ParsedFeed(
        title=title or "(untitled feed)",
        link=str(feed.get("link") or "").strip() or None,
        language=language,
        description=str(feed.get("subtitle") or feed.get("summary") or "").strip(),
        podcast_guid=declared_guid or podcast_guid_for(feed_url),
        guid_declared=bool(declared_guid),
        new_feed_url=new_url,
        blocked=block,
        locked=bool(locked_el) and _yes(_text(locked_el[0])),
        locked_owner=(locked_el[0].get("owner") if locked_el else None),
        update_frequency=update_frequency,
        persons=_persons(channel),
        items=tuple(items),
        skipped=skipped,
        warnings=tuple(warnings),
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


def parse_opml(body: bytes) -> list[dict[str, str]]:
    """Feeds listed in an OPML document: [{"url", "title"}] from every outline with an xmlUrl."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PermanentError("the OPML declares entities; refused", reason="xml_entities") from exc
    except ParseError as exc:
        raise PermanentError(f"the OPML is not well-formed XML: {exc}", reason="malformed_xml") from exc
    if _local(root.tag)[1].lower() != "opml":
        raise PermanentError("not an OPML document", reason="not_opml")
    out = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url:
            out.append({"url": url, "title": (outline.get("title") or outline.get("text") or "").strip()})
    return out


def render_opml(feeds: list[tuple[str, str | None]], title: str = "podbrief feeds") -> str:
    from xml.sax.saxutils import quoteattr

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{title}</title></head>",
        "  <body>",
    ]
    for url, name in feeds:
        label = quoteattr(name or url)
        lines.append(f'    <outline type="rss" text={label} title={label} xmlUrl={quoteattr(url)}/>')
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)
