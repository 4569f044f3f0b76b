"""Feed parsing on the real-world feeds in ../shared/data/feeds/real-world, and on crafted edge cases."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from podbrief.errors import PermanentError
from podbrief.events.ids import episode_id
from podbrief_ingest.episodes import parse_chapters, plan_items, transcript_candidates
from podbrief_ingest.opml import parse_opml, render_opml
from podbrief_ingest.parser import media_type, newest_first, parse_feed, podcast_guid_for
from podbrief_ingest.schedule import cadence_interval
from podbrief_ingest.settings import IngestSettings

from .conftest import item, rss

pytestmark = pytest.mark.unit

# file: (items, podcast:transcript tags, items with chapters, items with transcripts, podcast:guid declared)
REAL_WORLD = {
    "no-agenda.xml": (29, 29, 29, 29, "856cd618-7f34-57ea-9b84-3600f1f65e7f"),
    "animated-no-agenda.xml": (20, 0, 0, 0, None),
    "themnshow.xml": (54, 56, 54, 54, "7a2d292c-8656-5fcf-88d2-31b10e54d7c7"),
    "homegrown-hits.xml": (4, 0, 4, 0, "ac746d09-7c3b-5bcd-b28a-f12d6456ca8f"),
    "sentimental-garbage.xml": (138, 0, 0, 0, None),
    "1865.xml": (61, 0, 0, 0, None),
    "changing-the-tide.xml": (15, 0, 0, 0, None),
    "dk-podcast.xml": (59, 0, 0, 0, None),
    "pc20rss.xml": (56, 47, 48, 47, "917393e3-1b1e-5cef-ace4-edaa54e1f810"),
    "launched.xml": (36, 0, 0, 0, None),
}


def test_every_real_world_feed_is_covered(shared_dir: Path) -> None:
    assert {p.name for p in (shared_dir / "data/feeds/real-world").glob("*.xml")} == set(REAL_WORLD)


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_feed(shared_dir: Path, name: str) -> None:
    items, tags, with_chapters, with_transcripts, guid = REAL_WORLD[name]
    url = f"https://feeds.example.com/{name}"
    feed = parse_feed((shared_dir / "data/feeds/real-world" / name).read_bytes(), url)
    assert len(feed.items) == items and feed.skipped == 0
    assert sum(len(i.transcripts) for i in feed.items) == tags
    assert sum(1 for i in feed.items if i.transcripts) == with_transcripts
    assert sum(1 for i in feed.items if i.chapters_url) == with_chapters
    assert feed.guid_declared == (guid is not None)
    assert feed.podcast_guid == (guid or podcast_guid_for(url))
    assert feed.title and not feed.blocked
    # Identity is deterministic and unique per item; every item is transcribable media.
    assert len({i.episode_id for i in feed.items}) == items
    for i in feed.items:
        assert i.episode_id == episode_id(url, i.guid, i.enclosure_url)
        assert i.media_problem() is None, (i.title, i.enclosure_type)
        assert all(t.url.startswith("http") and t.type for t in i.transcripts)


def test_pc20_details(shared_dir: Path) -> None:
    feed = parse_feed(
        (shared_dir / "data/feeds/real-world/pc20rss.xml").read_bytes(),
        "https://mp3s.nashownotes.com/pc20rss.xml",
    )
    assert feed.title == "Podcasting 2.0" and feed.locked and feed.language == "en"
    newest = newest_first(feed.items)[0]
    assert newest.guid == "PC2057" and newest.enclosure_type == "audio/mpeg"
    assert newest.transcripts[0].url == "https://mp3s.nashownotes.com/PC20-57-Captions.srt"
    assert newest.transcripts[0].type == "application/srt"
    assert newest.chapters_url and newest.chapters_url.startswith("http://34.117.70.159/")
    assert any(p["name"] for p in newest.persons)
    assert newest.published_at is not None and newest.published_at.tzinfo is not None
    # The spec's derivation gives the guid the feed declares.
    assert podcast_guid_for("https://mp3s.nashownotes.com/pc20rss.xml") == feed.podcast_guid


def test_themnshow_two_transcript_types_and_update_frequency(shared_dir: Path) -> None:
    feed = parse_feed((shared_dir / "data/feeds/real-world/themnshow.xml").read_bytes(), "https://x/themn.xml")
    assert feed.update_frequency == {
        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA",
        "label": "Biweekly on Saturdays",
    }
    multi = [i for i in feed.items if len(i.transcripts) > 1]
    assert multi and all(len({t.type for t in i.transcripts}) > 1 for i in multi)


def test_new_feed_url_and_repairs(shared_dir: Path) -> None:
    # Whitespace before the XML declaration and undefined entities outside CDATA are repaired, not fatal.
    body = (shared_dir / "data/feeds/real-world/sentimental-garbage.xml").read_bytes()
    assert not body.startswith(b"<?xml")
    feed = parse_feed(body, "https://x/sg.xml")
    assert feed.new_feed_url == "https://feeds.acast.com/public/shows/edd6bde5-221e-4c07-bde8-2a0241ccc6e0"
    na = parse_feed((shared_dir / "data/feeds/real-world/no-agenda.xml").read_bytes(), "https://x/na.xml")
    assert len(na.items) == 29


def test_atom_feed() -> None:
    atom = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:podcast="https://podcastindex.org/namespace/1.0"><title>Atom Show</title><id>urn:x</id>
      <entry><id>urn:e1</id><title>One</title><updated>2026-01-02T03:04:05Z</updated>
      <link rel="enclosure" href="https://cdn.example.com/1.m4a" type="audio/x-m4a" length="10"/>
      <podcast:transcript url="https://cdn.example.com/1.vtt" type="text/vtt"/></entry></feed>"""
    feed = parse_feed(atom, "https://x/atom.xml")
    assert feed.title == "Atom Show" and len(feed.items) == 1
    it = feed.items[0]
    assert it.guid == "urn:e1" and it.enclosure_url == "https://cdn.example.com/1.m4a"
    assert it.transcripts[0].type == "text/vtt" and it.published_at is not None


def test_identity_falls_back_to_enclosure_and_skips_unidentifiable() -> None:
    doc = rss([item(1, guid=" "), "<item><title>nothing to identify</title></item>", item(2), item(3, guid="ep-2")])
    feed = parse_feed(doc.encode(), "https://x/f.xml")
    assert [i.guid for i in feed.items] == ["https://cdn.example.com/ep1.mp3", "ep-2"]
    assert feed.items[0].episode_id == episode_id("https://x/f.xml", None, "https://cdn.example.com/ep1.mp3")
    assert feed.skipped == 2  # one without guid or enclosure, one duplicate guid


def test_block_lock_and_persons() -> None:
    extra = (
        '<podcast:block>yes</podcast:block><podcast:locked owner="a@b.c">yes</podcast:locked>'
        '<podcast:person role="host">Ann</podcast:person>'
    )
    feed = parse_feed(rss([item(1)], extra).encode(), "https://x/f.xml")
    assert feed.blocked and feed.locked and feed.locked_owner == "a@b.c"
    assert feed.persons == ({"name": "Ann", "role": "host"},)
    other = parse_feed(rss([item(1)], '<podcast:block id="spotify">yes</podcast:block>').encode(), "https://x")
    assert not other.blocked  # a block aimed at another platform


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><head><title>Not a feed</title></head><body>hi</body></html>", "not_a_feed"),
        (b"<html><body><p>Welcome</p></body></html>", "not_a_feed"),
        (b"<note><to>x</to></note>", "not_a_feed"),
        (b"just some text, no markup at all", "malformed_xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<rss><channel><title>&lol2;</title></channel></rss>",
            "xml_entities",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><channel>'
            b"<title>&x;</title></channel></rss>",
            "xml_entities",
        ),
        (b"<rss><channel></channel></rss>", "no_items_or_title"),
    ],
)
def test_hostile_documents(body: bytes, reason: str) -> None:
    with pytest.raises(PermanentError) as err:
        parse_feed(body, "https://x/f.xml")
    assert err.value.reason == reason


def test_billion_laughs_is_refused_quickly() -> None:
    import time

    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    doc = "<rss><channel><title>&lol9;</title></channel></rss>"
    bomb = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>{doc}'
    started = time.perf_counter()
    with pytest.raises(PermanentError) as err:
        parse_feed(bomb.encode(), "https://x/bomb.xml")
    assert err.value.reason == "xml_entities" and time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("declared", "url", "expected"),
    [
        ("audio/mpeg", "https://x/a", "audio/mpeg"),
        ("video/mp4", "https://x/v", "video/mp4"),
        (None, "https://x/a.mp3?x=1", "audio/mpeg"),
        ("application/octet-stream", "https://x/a.m4a", "audio/mp4"),
        ("image/jpeg", "https://x/a.mp3", None),
        ("text/html", "https://x/page", None),
        (None, "https://x/a.pdf", None),
    ],
)
def test_media_type(declared: str | None, url: str, expected: str | None) -> None:
    assert media_type(declared, url) == expected


def test_plan_items_backfill() -> None:
    feed = parse_feed(rss([item(n) for n in range(1, 8)]).encode(), "https://x/f.xml")
    emit, backlog = plan_items(feed.items, set(), backfilled=False, backfill_limit=3)
    assert [i.guid for i in emit] == ["ep-7", "ep-6", "ep-5"] and len(backlog) == 4
    assert plan_items(feed.items, set(), backfilled=False, backfill_limit=-1)[0] == newest_first(feed.items)
    known = {i.episode_id for i in feed.items[1:]}
    emit2, backlog2 = plan_items(feed.items, known, backfilled=True, backfill_limit=3)
    assert [i.guid for i in emit2] == ["ep-1"] and backlog2 == []


def test_cadence_interval() -> None:
    s = IngestSettings(min_poll_interval_s=300, max_poll_interval_s=86400, poll_interval_s=1800)
    daily = parse_feed(rss([item(n) for n in range(1, 10)]).encode(), "https://x/f.xml").items
    assert cadence_interval(daily, s, None) == 86400 / 4
    assert cadence_interval(daily[:1], s, None) == 1800  # too few dates: the default
    assert cadence_interval(daily, s, {"complete": "true"}) == 86400


def test_transcript_preference_and_chapters() -> None:
    from podbrief.events.models import TranscriptLink

    links = [
        TranscriptLink(url="https://x/t.html", type="text/html"),
        TranscriptLink(url="https://x/t.srt", type="application/x-subrip"),
        TranscriptLink(url="https://x/t.bin", type="application/x-unknown"),
        TranscriptLink(url="https://x/t.json", type="application/json"),
        TranscriptLink(url="https://x/t.vtt", type="text/vtt"),
    ]
    assert [link.url.rsplit(".", 1)[1] for link in transcript_candidates(links)] == [
        "json",
        "vtt",
        "srt",
        "html",
    ]
    chapters = parse_chapters(
        b'{"version":"1.2.0","chapters":[{"startTime":60,"title":"B"},'
        b'{"startTime":0,"title":"A"},{"startTime":5,"title":"hidden","toc":false},{"title":""}]}'
    )
    assert [(c.start_s, c.title) for c in chapters] == [(0, "A"), (60, "B")]
    with pytest.raises(PermanentError):
        parse_chapters(b"[1,2]")


def test_opml_round_trip() -> None:
    doc = render_opml([("https://a.example/feed.xml", "A & B"), ("https://b.example/rss", None)])
    assert parse_opml(doc.encode()) == [
        {"url": "https://a.example/feed.xml", "title": "A & B"},
        {"url": "https://b.example/rss", "title": "https://b.example/rss"},
    ]
    with pytest.raises(PermanentError):
        parse_opml(b"<rss/>")


def test_feed_ids_are_uuids() -> None:
    feed = parse_feed(rss([item(1)]).encode(), "https://x/f.xml")
    assert isinstance(feed.items[0].episode_id, uuid.UUID)
