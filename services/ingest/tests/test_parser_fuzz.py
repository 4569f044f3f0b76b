"""Real feeds, damaged at random (seeded, so a failure reproduces): the parser either reads them, with every
field bounded and every one-line field on one line, or refuses them with a known reason. Nothing else escapes
(no crash takes a poll down as an "unexpected" error)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from podbrief.errors import PermanentError
from podbrief_ingest.parser import MAX_GUID, MAX_MIME, MAX_SHOW_TITLE, MAX_TITLE, MAX_URL, parse_feed

pytestmark = pytest.mark.unit

FEEDS = ("pc20rss.xml", "launched.xml", "sentimental-garbage.xml", "dk-podcast.xml")
REASONS = frozenset({"empty", "not_a_feed", "xml_entities", "malformed_xml", "no_items_or_title"})
JUNK = [b"<", b">", b"&", b"&nbsp;", b"\x00", b"\x1b", b"\xff", b"\xc3", b"]]>", b"<![CDATA[", b"\r\n", b"\xe2\x80\xae"]


def _mutate(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        at = rng.randrange(len(data))
        kind = rng.randrange(5)
        if kind == 0:  # truncate
            del data[at:]
        elif kind == 1:  # flip a byte
            data[at] = rng.randrange(256)
        elif kind == 2:  # insert junk
            data[at:at] = rng.choice(JUNK)
        elif kind == 3:  # delete a span
            del data[at : at + rng.randint(1, 200)]
        else:  # duplicate a span
            data[at:at] = data[at : at + rng.randint(1, 400)]
        if not data:
            break
    return bytes(data)


@pytest.mark.parametrize("name", FEEDS)
def test_damaged_real_feeds_are_read_or_refused_with_a_reason(shared_dir: Path, name: str) -> None:
    body = (shared_dir / "data/feeds/real-world" / name).read_bytes()
    rng = random.Random(f"podbrief-{name}")
    read = 0
    for _ in range(40):
        damaged = _mutate(body, rng)
        try:
            feed = parse_feed(damaged, "https://feeds.example.com/f.xml")
        except PermanentError as exc:
            assert exc.reason in REASONS, (exc.reason, str(exc))
            continue
        read += 1
        assert 0 < len(feed.title) <= MAX_SHOW_TITLE and "\n" not in feed.title
        for it in feed.items:
            assert 0 < len(it.title) <= MAX_TITLE and not any(c in it.title for c in "\r\n\x00\x1b\u202e")
            assert len(it.guid) <= MAX_GUID
            assert it.enclosure_url is None or (
                len(it.enclosure_url) <= MAX_URL and it.enclosure_url.startswith("http")
            )
            assert it.enclosure_type is None or len(it.enclosure_type) <= MAX_MIME
            assert it.link is None or it.link.startswith(("http://", "https://"))
    # Most damage is local: the repairs and lxml's recover mode read the feed anyway.
    assert read >= 25, read
