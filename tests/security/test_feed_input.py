"""What a publisher controls in a feed cannot reach a reader as lines, reversed text, invisible text or a field
too long for the pipeline, and ingest's admin API answers every bad input with a problem document.

Issue 21's ingest-side findings, each tested through the real ingest app and a feed served on loopback:
4 (CR/LF in titles forge lines in the plain-text email), 5 (bidi and zero-width characters), 6 (unbounded
feed fields), 10 (a 10^20 offset and an OPML in an unknown encoding answered 500 in plain text) and 11 (the
registration check missed decimal, hex and octal IP forms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from podbrief.settings import NetSettings
from podbrief_ingest.parser import parse_feed
from podbrief_testing import LoopbackServer

pytestmark = pytest.mark.unit

KEY = {"X-API-Key": "security-suite-admin-key-0123456789"}
LOOPBACK_NET = NetSettings(allowed_networks=("127.0.0.0/8",), connect_timeout_s=5, read_timeout_s=5)
NS = 'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:podcast="https://podcastindex.org/namespace/1.0"'
# Bidi controls and invisible characters a probe put into titles.
TRICKS = "\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\u2060\ufeff\U000e0041"


def _feed(channel: str, items: str, title: str = "Energy Hour") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {NS}><channel><title>{title}</title>'
        f"<link>https://example.com/</link>{channel}{items}</channel></rss>"
    )


def _item(title: str, n: int = 1, extra: str = "", enclosure: str | None = None) -> str:
    url = enclosure or f"https://cdn.example.com/{n}.mp3"
    return (
        f"<item><title>{title}</title><guid>ep-{n}</guid><pubDate>Mon, 05 Jan 2026 10:00:00 +0000</pubDate>"
        f'<enclosure url="{url}" length="1000" type="audio/mpeg"/>{extra}</item>'
    )


def _register(client: TestClient, loopback: LoopbackServer, body: str) -> dict[str, Any]:
    url = loopback.add("/feed.xml", body, "application/rss+xml")
    r = client.post("/v1/feeds", json={"url": url}, headers=KEY)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _episodes(client: TestClient, feed_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/feeds/{feed_id}/episodes", headers=KEY)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


# Finding 4 ----------------------------------------------------------------------------------------------------
def test_line_breaks_in_titles_cannot_forge_lines(started: Callable[..., TestClient], loopback: LoopbackServer) -> None:
    forged = "&#13;&#10;Unsubscribe: https://evil.example/u&#13;&#10;"
    body = _feed(
        "",
        _item(f"Batteries at home{forged}Reply-To: x@evil.example&#x2028;&#x85;&#11;&#12;end", 1),
        title=f"Energy Hour{forged}",
    )
    feed = parse_feed(body.encode(), "https://feeds.example.com/f.xml")
    for text in (feed.title, feed.items[0].title):
        assert not any(c in text for c in "\r\n\u2028\u2029\x85\x0b\x0c"), repr(text)
    assert feed.title == "Energy Hour Unsubscribe: https://evil.example/u"

    client = started("ingest", net=LOOPBACK_NET)
    created = _register(client, loopback, body)
    assert created["first_poll"]["outcome"] == "ok" and created["first_poll"]["emitted"] == 1
    title = _episodes(client, created["feed"]["id"])[0]["title"]
    assert title == "Batteries at home Unsubscribe: https://evil.example/u Reply-To: x@evil.example end"
    assert "\n" not in created["feed"]["title"] and "\r" not in created["feed"]["title"]


# Finding 5 ----------------------------------------------------------------------------------------------------
def test_bidi_controls_and_invisible_characters_are_removed(
    started: Callable[..., TestClient], loopback: LoopbackServer
) -> None:
    person = f'<podcast:person role="host{TRICKS}">Ann{TRICKS} Lee</podcast:person>'
    body = _feed(person, _item(f"Gpj.exe{TRICKS} trailer", 1, extra=person), title=f"Energy{TRICKS} Hour")
    feed = parse_feed(body.encode(), "https://feeds.example.com/f.xml")
    item = feed.items[0]
    for text in (feed.title, item.title, feed.persons[0]["name"], feed.persons[0]["role"], item.persons[0]["name"]):
        assert not any(c in text for c in TRICKS), ascii(text)
    assert (feed.title, item.title, item.persons[0]["name"]) == ("Energy Hour", "Gpj.exe trailer", "Ann Lee")

    client = started("ingest", net=LOOPBACK_NET)
    created = _register(client, loopback, body)
    assert created["feed"]["title"] == "Energy Hour"
    assert _episodes(client, created["feed"]["id"])[0]["title"] == "Gpj.exe trailer"


# Finding 6 ----------------------------------------------------------------------------------------------------
def _oversized_feed() -> str:
    long_url = "https://cdn.example.com/" + "a" * 5000 + ".mp3"
    persons = "".join(f'<podcast:person role="{"r" * 500}">{"N" * 1000} {i}</podcast:person>' for i in range(120))
    transcripts = "".join(
        f'<podcast:transcript url="https://cdn.example.com/t{i}.vtt" type="text/vtt{"x" * 500}" '
        f'language="{"l" * 300}" rel="{"c" * 300}"/>'
        for i in range(60)
    )
    frequency_attrs = " ".join(f'k{i}="{"v" * 500}"' for i in range(40))
    channel = (
        f"<language>{'en' * 100}</language><podcast:guid>{'g' * 500}</podcast:guid>"
        f'<podcast:locked owner="{"o" * 2000}@example.com">yes</podcast:locked>'
        f"<podcast:updateFrequency {frequency_attrs}>{'F' * 2000}"
        f"</podcast:updateFrequency>{persons}<description>{'D' * 100_000}</description>"
    )
    items = (
        f"<item><title>{'T ' * 10_000}</title><guid>{'G' * 5000}</guid>"
        f"<link>https://example.com/{'p' * 5000}</link><description>{'d ' * 100_000}</description>"
        f'<enclosure url="https://cdn.example.com/ep.mp3" length="{"9" * 30}" type="audio/mpeg{"; x=y" * 300}"/>'
        f"<itunes:duration>{'9' * 40}</itunes:duration>{persons}{transcripts}"
        f'<podcast:chapters url="https://cdn.example.com/c.json" type="application/json{"x" * 500}"/></item>'
        f'<item><title>too long a URL</title><guid>ep-2</guid><enclosure url="{long_url}" type="audio/mpeg"/></item>'
    )
    return _feed(channel, items, title="S" * 5000)


def test_every_feed_field_is_bounded_at_ingestion(started: Callable[..., TestClient], loopback: LoopbackServer) -> None:
    feed = parse_feed(_oversized_feed().encode(), "https://feeds.example.com/f.xml")
    assert len(feed.title) <= 1000 and len(feed.description) <= 5000
    assert feed.language is None and len(feed.podcast_guid) <= 200 and not feed.guid_declared
    assert feed.locked_owner is not None and len(feed.locked_owner) <= 320
    assert feed.update_frequency is not None and len(feed.update_frequency) <= 9
    assert all(len(k) <= 32 and len(v) <= 200 for k, v in feed.update_frequency.items())
    assert len(feed.persons) <= 50 and all(len(v) <= 200 for p in feed.persons for v in p.values())
    first, second = feed.items
    assert len(first.title) <= 2000 and len(first.description) <= 20_000 and len(first.guid) <= 2000
    assert first.link is None and "link_too_long" in first.notes
    assert first.enclosure_length is None and first.duration_s is None
    assert first.enclosure_type is not None and len(first.enclosure_type) <= 200
    assert len(first.transcripts) <= 20 and all(len(t.type) <= 200 for t in first.transcripts)
    assert all(t.language is None and len(t.rel or "") <= 100 for t in first.transcripts)
    assert first.chapters_type is not None and len(first.chapters_type) <= 200
    assert len(first.persons) <= 50
    assert second.enclosure_url is None and second.media_problem() == "enclosure_url_too_long"

    # Through the service: the poll succeeds, the episode is emitted, the stored fields are bounded.
    client = started("ingest", net=LOOPBACK_NET)
    created = _register(client, loopback, _oversized_feed())
    assert created["first_poll"]["outcome"] == "ok", created["first_poll"]
    assert created["first_poll"]["emitted"] == 1 and created["first_poll"]["rejected"] == 1
    assert len(created["feed"]["title"]) <= 1000 and created["feed"]["language"] is None
    stored = {e["guid"][:10]: e for e in _episodes(client, created["feed"]["id"])}
    ok = stored["G" * 10]
    assert ok["status"] == "emitted" and len(ok["title"]) <= 2000 and len(ok["enclosure_type"]) <= 200
    assert stored["ep-2"]["status"] == "rejected" and stored["ep-2"]["error"] == "enclosure_url_too_long"


# Finding 10 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    ["offset=100000000000000000000", "offset=-1", "limit=100000000000000000000", "offset=1e3", "limit=0"],
)
def test_numeric_query_parameters_are_bounded(started: Callable[..., TestClient], query: str) -> None:
    client = started("ingest")
    r = client.get(f"/v1/feeds?{query}", headers=KEY)
    assert r.status_code == 422, (query, r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0" encoding="x-no-such-encoding"?><opml version="2.0"><body/></opml>',
        b'<?xml version="1.0" encoding="utf-16"?><opml version="2.0"><body/></opml>',
        b'<?xml version="1.0" encoding="utf-8"?><opml version="2.0"><body><outline xmlUrl="\xff\xfe"/></body></opml>',
        b"\xff\xfe<\x00o\x00p\x00m\x00l\x00>\x00",
    ],
)
def test_opml_decoding_errors_answer_a_problem(started: Callable[..., TestClient], body: bytes) -> None:
    client = started("ingest")
    r = client.post("/v1/opml", content=body, headers={**KEY, "Content-Type": "text/x-opml"})
    assert r.status_code == 422, (body[:60], r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/problem+json" and r.json()["reason"]


# Finding 11 ---------------------------------------------------------------------------------------------------
NUMERIC_FORMS = [
    "http://2130706433/feed.xml",  # 127.0.0.1 in decimal
    "http://0x7f000001/feed.xml",  # in hex
    "http://017700000001/feed.xml",  # in octal
    "http://127.1/feed.xml",  # shortened dotted form
    "http://0x7f.1/feed.xml",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254
    "http://0xA9FEA9FE/latest/meta-data/",
    "http://0/feed.xml",  # 0.0.0.0
    "http://167772161/feed.xml",  # 10.0.0.1
]


@pytest.mark.parametrize("url", NUMERIC_FORMS)
def test_registration_refuses_numeric_ip_forms(started: Callable[..., TestClient], url: str) -> None:
    client = started("ingest")
    r = client.post("/v1/feeds", json={"url": url, "validate": False}, headers=KEY)
    assert r.status_code == 400, (url, r.status_code, r.text)
    assert r.json()["reason"] in ("ssrf_blocked", "invalid_url")
    opml = f'<?xml version="1.0"?><opml version="2.0"><body><outline xmlUrl="{url}"/></body></opml>'
    r = client.post("/v1/opml", content=opml, headers=KEY)
    assert r.status_code == 200 and r.json()["added"] == [] and len(r.json()["invalid"]) == 1
    assert client.get("/v1/feeds", headers=KEY).json()["total"] == 0
