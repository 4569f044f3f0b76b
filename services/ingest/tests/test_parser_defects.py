"""Issue 16's eight classes of real-feed defects, each on a crafted case and, for the XML faults, on real feeds
with the fault injected: a repaired document must give exactly the episodes of the clean one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from podbrief.errors import PermanentError
from podbrief_ingest.feedxml import read_document
from podbrief_ingest.parser import parse_feed

from .conftest import ITUNES_NS, PODCAST_NS, item, rss

pytestmark = pytest.mark.unit

URL = "https://feeds.example.com/show/feed.xml"


def _episodes(body: bytes | str, url: str = URL) -> list[tuple[str, str | None, datetime | None]]:
    raw = body.encode() if isinstance(body, str) else body
    return [(i.guid, i.enclosure_url, i.published_at) for i in parse_feed(raw, url).items]


# 1. Recoverable XML faults ------------------------------------------------------------------------------------
def _real(shared_dir: Path, name: str) -> bytes:
    return (shared_dir / "data/feeds/real-world" / name).read_bytes()


def _first_item_title(text: str, replacement: str) -> str:
    return re.sub(r"<title>[^<]*</title>", f"<title>{replacement}</title>", text[text.index("<item") :], count=1)


INJECTIONS = {
    # name: (how the clean document is broken, the repair expected)
    "undeclared_itunes_prefix": (lambda t: t.replace(f" {ITUNES_NS}", "", 1), "undeclared_prefix"),
    "undeclared_atom_prefix": (
        lambda t: re.sub(r'\s+xmlns:atom="[^"]*"', "", t).replace(
            "<channel>", '<channel><atom:link rel="self" href="https://x/f.xml"/>', 1
        ),
        "undeclared_prefix",
    ),
    "control_character": (lambda t: t.replace("</title>", "\x1b[31m\x07</title>", 3), "control_chars"),
    "control_character_reference": (lambda t: t.replace("</title>", "&#x1B;&#7;</title>", 3), "control_chars"),
    "unescaped_ampersand_and_lt": (
        lambda t: t[: t.index("<item")] + _first_item_title(t, "Q&A: I <3 feeds & you"),
        "stray_markup",
    ),
    "html_entity": (lambda t: t.replace("</title>", "&nbsp;&mdash;</title>", 2), "entities"),
    "junk_before_declaration": (lambda t: "\n<b>Warning</b>: deprecated in feed.php<br/>\n" + t, "leading_junk"),
}


@pytest.mark.parametrize("fault", sorted(INJECTIONS))
@pytest.mark.parametrize("name", ["launched.xml", "pc20rss.xml", "1865.xml"])
def test_injected_faults_are_repaired_and_lose_no_episode(shared_dir: Path, name: str, fault: str) -> None:
    clean_bytes = _real(shared_dir, name)
    clean = parse_feed(clean_bytes, URL)
    text = clean_bytes.decode("utf-8")
    if fault == "undeclared_itunes_prefix" and ITUNES_NS not in text:
        pytest.skip(f"{name} declares the itunes prefix differently")
    breaker, repair = INJECTIONS[fault]
    broken = breaker(text).encode("utf-8")
    with pytest.raises(Exception):  # noqa: B017 - the point is that the strict parser refuses it
        __import__("defusedxml.ElementTree").ElementTree.fromstring(broken)
    fixed = parse_feed(broken, URL)
    assert repair in {r.kind for r in fixed.repairs}, fixed.repairs
    assert fixed.recovered and not clean.recovered
    assert [(i.guid, i.enclosure_url, i.published_at) for i in fixed.items] == [
        (i.guid, i.enclosure_url, i.published_at) for i in clean.items
    ]


def test_unescaped_markup_in_a_title_is_kept_as_text() -> None:
    doc = rss([item(1).replace("Episode 1", "Q&A: I <3 feeds & you"), item(2)])
    feed = parse_feed(doc.encode(), URL)
    assert [i.title for i in feed.items] == ["Q&A: I <3 feeds & you", "Episode 2"]
    assert {r.kind for r in feed.repairs} == {"entities", "stray_markup"}


def test_cdata_is_not_rewritten() -> None:
    doc = rss(
        [item(1).replace("Episode 1", "<![CDATA[Tom & Jerry <3 &nbsp;]]>"), item(2).replace("Episode 2", "A & B")]
    )
    feed = parse_feed(doc.encode(), URL)
    assert feed.items[0].title == "Tom & Jerry <3 &nbsp;"
    assert feed.items[1].title == "A & B"


@pytest.mark.parametrize(
    ("declared", "payload", "expected"),
    [
        ("UTF-8", "Café Müller — €5".encode("cp1252"), "Café Müller — €5"),  # declared UTF-8, really cp1252
        ("UTF-8", "Zoë's ".encode() + "naïve".encode("latin-1"), "Zoë's naïve"),  # UTF-8 with stray Latin-1
        ("x-unknown-charset", "Señal".encode(), "Señal"),  # an encoding Python does not know
        ("ISO-8859-1", "Ærø".encode("latin-1"), "Ærø"),  # declared right: no repair at all
    ],
)
def test_bytes_in_another_encoding_than_declared(declared: str, payload: bytes, expected: str) -> None:
    head = f'<?xml version="1.0" encoding="{declared}"?><rss version="2.0"><channel><title>'.encode()
    tail = b"</title>" + item(1).encode() + b"</channel></rss>"
    feed = parse_feed(head + payload + tail, URL)
    assert feed.title == expected and len(feed.items) == 1
    assert ("encoding" in {r.kind for r in feed.repairs}) == (declared != "ISO-8859-1")


def test_http_charset_is_used_when_the_document_declares_nothing() -> None:
    body = b'<rss version="2.0"><channel><title>' + "Привет".encode("koi8-r") + b"</title>"
    body += item(1).encode() + b"</channel></rss>"
    assert parse_feed(body, URL, charset="koi8-r").title == "Привет"


def test_a_truncated_document_keeps_every_complete_item(shared_dir: Path) -> None:
    text = _real(shared_dir, "launched.xml").decode()
    clean = parse_feed(text.encode(), URL)
    cut = text[: text.index("<item", text.index("<item") + 10) + 200]  # inside the second item
    feed = parse_feed(cut.encode(), URL)
    assert feed.recovered and "xml_recover" in {r.kind for r in feed.repairs}
    assert feed.items[0].guid == clean.items[0].guid and feed.title == clean.title


@pytest.mark.parametrize(
    "hostile",
    [
        # Entities behind a fault the repairs fix: still refused.
        b'   <?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<rss><channel><title>&b;</title></channel></rss>",
        # Entities behind a fault only lxml's recover mode gets past (a broken XML declaration, which expat
        # stops at before it sees the DTD): refused there too.
        b'<?xml version="1.0" standalone="maybe"?><!DOCTYPE rss [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
        b"<rss><channel><title>&b;</title><item></channel></rss>",
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<rss><channel><title>&x;</title><foo:bar/></channel></rss>",
    ],
)
def test_entity_expansion_is_refused_on_the_recovery_path_too(hostile: bytes) -> None:
    with pytest.raises(PermanentError) as err:
        parse_feed(hostile, URL)
    assert err.value.reason == "xml_entities"


def test_recover_mode_reads_no_external_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    doc = f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file://{secret}"><rss><channel><title>x</title><item>'
    try:
        text = "".join(read_document(doc.encode()).root.itertext())
    except PermanentError as exc:
        assert exc.reason in ("xml_entities", "malformed_xml")
        return
    assert "TOP-SECRET" not in text


# 2. The audio enclosure among several -------------------------------------------------------------------------
def test_the_audio_enclosure_wins_over_cover_art_and_video() -> None:
    cover = '<enclosure url="https://cdn.example.com/cover.jpg" type="image/jpeg" length="1"/>'
    video = '<enclosure url="https://cdn.example.com/ep.mp4" type="video/mp4" length="1"/>'
    doc = rss(
        [
            f"<item><guid>a</guid>{cover}<enclosure url='https://cdn.example.com/a.mp3' type='audio/mpeg'/></item>",
            f"<item><guid>b</guid>{video}<enclosure url='https://cdn.example.com/b.m4a' type=''/></item>",
            f"<item><guid>c</guid>{cover}{video}</item>",
            f"<item><guid>d</guid>{cover}</item>",
        ]
    )
    a, b, c, d = parse_feed(doc.encode(), URL).items
    assert a.enclosure_url == "https://cdn.example.com/a.mp3" and a.media_problem() is None
    assert b.enclosure_url == "https://cdn.example.com/b.m4a" and b.media_problem() is None
    assert c.enclosure_url == "https://cdn.example.com/ep.mp4" and c.media_problem() is None
    assert d.media_problem() == "enclosure_not_audio (image/jpeg)"


# 3. media:content and media:group -----------------------------------------------------------------------------
def test_media_content_alone_is_an_enclosure() -> None:
    media = 'xmlns:media="http://search.yahoo.com/mrss/"'
    doc = (
        f'<rss version="2.0" {media}><channel><title>M</title>'
        "<item><guid>1</guid><media:content url='https://cdn.example.com/1.mp3' type='audio/mpeg' "
        "fileSize='123' duration='61'/></item>"
        "<item><guid>2</guid><media:group>"
        "<media:content url='https://cdn.example.com/2-hi.mp4' medium='video'/>"
        "<media:content url='https://cdn.example.com/2.m4a' type='audio/mp4' isDefault='true'/>"
        "</media:group></item>"
        "<item><guid>3</guid><media:thumbnail url='https://cdn.example.com/3.jpg'/></item>"
        "</channel></rss>"
    )
    one, two, three = parse_feed(doc.encode(), URL).items
    assert (one.enclosure_url, one.enclosure_length, one.duration_s) == ("https://cdn.example.com/1.mp3", 123, 61.0)
    assert two.enclosure_url == "https://cdn.example.com/2.m4a" and two.media_problem() is None
    assert three.media_problem() == "no_enclosure"


def test_podcast_alternate_enclosure_is_a_candidate() -> None:
    alt = (
        '<podcast:alternateEnclosure type="audio/opus" length="9"><podcast:source '
        'uri="https://cdn.example.com/1.opus"/></podcast:alternateEnclosure>'
    )
    doc = rss([f"<item><guid>1</guid><title>x</title>{alt}</item>"])
    assert parse_feed(doc.encode(), URL).items[0].enclosure_url == "https://cdn.example.com/1.opus"


# 4. Relative URLs and xml:base --------------------------------------------------------------------------------
def test_relative_urls_resolve_against_the_feed_url_and_xml_base() -> None:
    doc = (
        f'<rss version="2.0" {PODCAST_NS}><channel xml:base="https://cdn.example.com/media/"><title>R</title>'
        "<link>../index.html</link>"
        '<item><guid>1</guid><link>/ep/1</link><enclosure url="1.mp3" type="audio/mpeg"/>'
        '<podcast:transcript url="t/1.vtt" type="text/vtt"/><podcast:chapters url="c/1.json" type="application/json"/>'
        "</item>"
        '<item xml:base="https://other.example.net/x/"><guid>2</guid><enclosure url="2.mp3" type="audio/mpeg"/></item>'
        '<item><guid>3</guid><enclosure url="//cdn2.example.com/3.mp3" type="audio/mpeg"/></item>'
        "</channel></rss>"
    )
    feed = parse_feed(doc.encode(), URL)
    one, two, three = feed.items
    assert feed.link == "https://cdn.example.com/index.html"
    assert one.link == "https://cdn.example.com/ep/1"
    assert one.enclosure_url == "https://cdn.example.com/media/1.mp3"
    assert one.transcripts[0].url == "https://cdn.example.com/media/t/1.vtt"
    assert one.chapters_url == "https://cdn.example.com/media/c/1.json"
    assert two.enclosure_url == "https://other.example.net/x/2.mp3"
    assert three.enclosure_url == "https://cdn2.example.com/3.mp3"


def test_without_xml_base_relative_urls_resolve_against_the_document_url() -> None:
    doc = rss([item(1, enclosure_url="audio/ep1.mp3")])
    assert parse_feed(doc.encode(), URL).items[0].enclosure_url == "https://feeds.example.com/show/audio/ep1.mp3"
    # After a redirect the document's own URL is the base, while the identity stays the registered URL.
    moved = parse_feed(doc.encode(), URL, base_url="https://new.example.org/pod/rss")
    assert moved.items[0].enclosure_url == "https://new.example.org/pod/audio/ep1.mp3"


@pytest.mark.parametrize("bad", ["ep1.mp3", "javascript:alert(1)", "file:///etc/passwd", "mailto:x@example.com"])
def test_a_url_that_cannot_be_made_absolute_is_flagged_not_queued(bad: str) -> None:
    doc = rss([item(1, enclosure_url=bad)])
    # Parsed from a file with no http(s) URL to resolve against (`podbrief feeds parse file.xml`).
    it = parse_feed(doc.encode(), "subscriptions/feed.xml").items[0]
    assert it.enclosure_url is None
    assert it.media_problem() == "enclosure_url_not_absolute"


# 5. podcast:liveItem stays out of the channel -----------------------------------------------------------------
def test_live_items_do_not_leak_into_the_channel() -> None:
    live = (
        '<podcast:liveItem status="live" start="2026-01-05T10:00:00Z" end="2026-01-05T11:00:00Z">'
        "<title>LIVE NOW</title><link>https://live.example.com/</link><description>Live show</description>"
        "<guid>live-1</guid>"
        '<enclosure url="https://live.example.com/stream" type="audio/mpeg"/></podcast:liveItem>'
    )
    doc = (
        f'<rss version="2.0" {PODCAST_NS}><channel>{live}<title>The Show</title>'
        f"<link>https://show.example.com/</link><description>About the show</description>{item(1)}</channel></rss>"
    )
    feed = parse_feed(doc.encode(), URL)
    assert (feed.title, feed.link, feed.description) == ("The Show", "https://show.example.com/", "About the show")
    assert [i.guid for i in feed.items] == ["ep-1"]
    (li,) = feed.live_items
    assert (li.guid, li.title, li.status, li.enclosure_url) == (
        "live-1",
        "LIVE NOW",
        "live",
        "https://live.example.com/stream",
    )
    assert li.start == datetime(2026, 1, 5, 10, tzinfo=UTC) and li.end == datetime(2026, 1, 5, 11, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "title", "link"),
    [
        ("homegrown-hits.xml", "Homegrown Hits", "https://homegrownhits.xyz"),
        ("themnshow.xml", "The Mike Neumann Show", "https://mikeneumann.show"),
    ],
)
def test_real_feeds_with_live_items(shared_dir: Path, name: str, title: str, link: str) -> None:
    feed = parse_feed(_real(shared_dir, name), URL)
    assert feed.live_items and (feed.title, feed.link) == (title, link)
    assert "live" not in feed.description.lower()[:20]
    assert not {li.guid for li in feed.live_items} & {i.guid for i in feed.items}


# 6. Dates -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected", "note"),
    [
        ("Mon, 05 Jan 2026 10:00:00 +0100", datetime(2026, 1, 5, 9, tzinfo=UTC), None),
        ("Mon, 05 Jan 2026 10:00:00", datetime(2026, 1, 5, 10, tzinfo=UTC), "date_assumed_utc"),
        ("Mon, 05 Jan 26 10:00:00 GMT", datetime(2026, 1, 5, 10, tzinfo=UTC), None),
        ("Lun, 05 janv. 2026 10:00:00 +0100", datetime(2026, 1, 5, 9, tzinfo=UTC), None),
        ("Mo, 05 Okt 2026 10:00:00 CEST", datetime(2026, 10, 5, 8, tzinfo=UTC), None),
        ("mar, 06 ene 2026 10:00:00 -0300", datetime(2026, 1, 6, 13, tzinfo=UTC), None),
        ("5 mei 2026 10:00", datetime(2026, 5, 5, 10, tzinfo=UTC), "date_assumed_utc"),
        ("2026-01-05T10:00:00Z", datetime(2026, 1, 5, 10, tzinfo=UTC), None),
        ("2026-01-05 10:00:00", datetime(2026, 1, 5, 10, tzinfo=UTC), "date_assumed_utc"),
        ("Monday, January 5, 2026 10:00 AM EST", datetime(2026, 1, 5, 15, tzinfo=UTC), None),
        ("not a date", None, "date_unparsed"),
        ("Mon, 05 Jan 1850 10:00:00 +0000", None, "date_out_of_range"),
    ],
)
def test_date_forms(raw: str, expected: datetime | None, note: str | None) -> None:
    doc = rss([item(1).replace(re.search(r"<pubDate>[^<]*</pubDate>", item(1)).group(0), f"<pubDate>{raw}</pubDate>")])  # type: ignore[union-attr]
    it = parse_feed(doc.encode(), URL).items[0]
    assert it.published_at == expected
    assert (note in it.notes) if note else not any(n.startswith("date_") for n in it.notes)


def test_dublin_core_and_atom_dates() -> None:
    doc = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel rdf:about="x"><title>R1</title></channel>'
        '<item rdf:about="https://example.com/a"><title>A</title><dc:date>2026-01-05T10:00:00+02:00</dc:date>'
        "</item></rdf:RDF>"
    )
    (a,) = parse_feed(doc.encode(), URL).items
    assert a.guid == "https://example.com/a" and a.published_at == datetime(2026, 1, 5, 8, tzinfo=UTC)


# 7. Atom links ------------------------------------------------------------------------------------------------
def test_atom_without_an_alternate_link_has_no_link() -> None:
    doc = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title><id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>'
        '<link rel="self" href="https://example.com/feed.atom"/>'
        "<entry><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id><title>One</title>"
        '<updated>2026-01-05T10:00:00Z</updated><link rel="enclosure" href="https://cdn.example.com/1.mp3"/></entry>'
        "<entry><id>https://example.com/posts/2</id><title>Two</title><updated>2026-01-05T10:00:00Z</updated>"
        '<link rel="alternate" type="text/html" href="/posts/2.html"/></entry>'
        "</feed>"
    )
    feed = parse_feed(doc.encode(), URL)
    assert feed.link is None
    one, two = feed.items
    assert one.link is None and one.guid == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert two.link == "https://feeds.example.com/posts/2.html"


def test_rss_permalink_guid_is_the_link_only_when_it_is_a_url() -> None:
    doc = rss(
        [
            "<item><guid>https://example.com/p/1</guid><enclosure url='https://c.example.com/1.mp3'/></item>",
            "<item><guid isPermaLink='false'>https://example.com/p/2</guid>"
            "<enclosure url='https://c.example.com/2.mp3'/></item>",
            "<item><guid>episode::3</guid><enclosure url='https://c.example.com/3.mp3'/></item>",
        ]
    )
    assert [i.link for i in parse_feed(doc.encode(), URL).items] == ["https://example.com/p/1", None, None]


# 8. What was dropped is visible -------------------------------------------------------------------------------
def test_dropped_items_are_counted_by_reason() -> None:
    doc = rss([item(1), item(2, guid="ep-1"), "<item><title>no identity</title></item>", item(3)])
    feed = parse_feed(doc.encode(), URL)
    assert [i.guid for i in feed.items] == ["ep-1", "ep-3"]
    assert feed.dropped == {"duplicate_guid": 1, "no_guid_no_enclosure": 1} and feed.skipped == 2
