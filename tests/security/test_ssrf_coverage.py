"""Every outbound fetch of an untrusted URL goes through the SSRF guard: the feed (ingest), the publisher
transcript and the chapters file (ingest, during a poll) and the enclosure download (transcription).

The "internet" is simulated without any allow-list: a fake resolver gives the test names public addresses,
and the socket layer under the guard sends connections for those public addresses to a loopback server,
while recording every address anything tried to connect to. A private address reaching the socket layer is
a failure even if nothing answered there."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohappyeyeballs
import httpcore
import pytest
from fastapi.testclient import TestClient
from httpcore._backends.auto import AutoBackend
from podbrief.errors import PermanentError
from podbrief_testing import LoopbackServer

pytestmark = pytest.mark.unit

KEY = {"X-API-Key": "security-suite-admin-key-0123456789"}
PUBLIC = "93.184.215.14"
PRIVATE_TARGETS = (
    "http://127.0.0.1:{port}/secret",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.5/internal",
    "http://[::ffff:127.0.0.1]:{port}/secret",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://localhost:{port}/secret",
)
PODCAST_NS = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'


@dataclass
class Internet:
    """Fake DNS plus a socket layer that routes the public address to the loopback server."""

    server: LoopbackServer
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)
    connects: list[str] = field(default_factory=list)

    def name(self, host: str, *answers: list[str]) -> str:
        """`host` resolves to answers[0] the first time, answers[1] the second, ... (the last one repeats)."""
        self.answers[host] = list(answers)
        return host

    def url(self, host: str, path: str) -> str:
        return f"http://{host}{path}"

    def private_connects(self) -> list[str]:
        return [a for a in self.connects if a != PUBLIC]


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch, loopback: LoopbackServer) -> Iterator[Internet]:
    net = Internet(loopback)
    real_getaddrinfo = socket.getaddrinfo
    real_connect = AutoBackend.connect_tcp

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in net.answers:
            n = net.lookups.get(name, 0)
            net.lookups[name] = n + 1
            addrs = net.answers[name][min(n, len(net.answers[name]) - 1)]
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    socket.IPPROTO_TCP,
                    "",
                    (a, int(port or 80), 0, 0) if ":" in a else (a, int(port or 80)),
                )
                for a in addrs
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    async def connect_tcp(self: AutoBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        net.connects.append(host)
        if host == PUBLIC:
            return await real_connect(self, "127.0.0.1", loopback.port, *args, **kwargs)
        raise httpcore.ConnectError(f"test internet: nothing at {host}")

    # aiohttp (ingest's fetches, podbrief.netfetch) opens its sockets through aiohappyeyeballs, with the
    # addresses its resolver returned: the same routing applies there.
    real_start = aiohappyeyeballs.start_connection

    async def start_connection(addr_infos: list[Any], **kwargs: Any) -> Any:
        routed = []
        for _family, type_, proto, canon, sockaddr in addr_infos:
            net.connects.append(str(sockaddr[0]))
            if sockaddr[0] == PUBLIC:
                routed.append((socket.AF_INET, type_, proto, canon, ("127.0.0.1", loopback.port)))
        if not routed:
            raise OSError(f"test internet: nothing at {[a[4][0] for a in addr_infos]}")
        return await real_start(addr_infos=routed, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(AutoBackend, "connect_tcp", connect_tcp)
    monkeypatch.setattr(aiohappyeyeballs, "start_connection", start_connection)
    yield net


def targets(port: int) -> list[str]:
    return [t.format(port=port) for t in PRIVATE_TARGETS]


def rss(items: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {PODCAST_NS}><channel>'
        f"<title>Public Show</title><link>https://public.test/</link>{items}</channel></rss>"
    )


def item(n: int, *, transcript: str | None = None, chapters: str | None = None) -> str:
    extra = ""
    if transcript:
        extra += f'<podcast:transcript url="{transcript}" type="application/srt"/>'
    if chapters:
        extra += f'<podcast:chapters url="{chapters}" type="application/json+chapters"/>'
    return (
        f"<item><title>Episode {n}</title><guid>ep-{n}</guid><pubDate>Thu, 01 Jan 2026 00:00:00 GMT</pubDate>"
        f'<enclosure url="https://cdn.public.test/ep{n}.mp3" length="1000" type="audio/mpeg"/>{extra}</item>'
    )


def add_feed(client: TestClient, url: str) -> Any:
    return client.post("/v1/feeds", json={"url": url}, headers=KEY)


# --- the feed URL ------------------------------------------------------------------------------------------


def test_feed_urls_to_private_addresses_are_refused(started: Callable[..., TestClient], internet: Internet) -> None:
    client = started("ingest")
    port = internet.server.port
    for url in [
        *targets(port),
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "http://0x7f000001/",
        "http://2130706433/",
    ]:
        r = add_feed(client, url)
        assert r.status_code == 400, (url, r.status_code, r.text)
        body = r.json()
        assert body["title"] == "URL not allowed" and body["reason"] in ("ssrf_blocked", "bad_scheme", "invalid_url")
    assert internet.private_connects() == []
    assert client.get("/v1/feeds", headers=KEY).json()["total"] == 0


def test_feed_redirects_to_private_addresses_are_refused(
    started: Callable[..., TestClient], internet: Internet
) -> None:
    client = started("ingest")
    host = internet.name("feeds.public.test", [PUBLIC])
    internet.server.add("/secret", rss(item(1)), "application/rss+xml")
    for n, target in enumerate(targets(internet.server.port)):
        internet.server.add(f"/hop{n}", b"", "text/plain", status=302, headers={"Location": target})
        r = add_feed(client, internet.url(host, f"/hop{n}"))
        assert r.status_code == 400, (target, r.status_code, r.text)
        assert r.json()["reason"] == "ssrf_blocked", target
    assert internet.server.hits.get("/secret", 0) == 0
    assert internet.private_connects() == []
    # The same feed without the redirect is fine: the guard is not simply refusing everything.
    internet.server.add("/feed.xml", rss(item(1)), "application/rss+xml")
    assert add_feed(client, internet.url(host, "/feed.xml")).status_code == 201


def test_feed_dns_rebinding_connects_to_the_checked_address(
    started: Callable[..., TestClient], internet: Internet
) -> None:
    """A name that answers public for the check and private for the connection: one lookup per connection,
    and the connection goes to the address that lookup returned and the guard checked."""
    client = started("ingest")
    host = internet.name("rebind.public.test", [PUBLIC], ["127.0.0.1"])
    internet.server.add("/feed.xml", rss(item(1)), "application/rss+xml")
    r = add_feed(client, internet.url(host, "/feed.xml"))
    assert r.status_code == 201, r.text
    assert internet.lookups[host] == 1 and internet.connects == [PUBLIC]
    # A new connection (another origin: another port) looks the name up again, sees the private answer, and
    # is refused before any socket is opened.
    internet.server.add("/feed2.xml", rss(item(2)), "application/rss+xml")
    r = add_feed(client, f"http://{host}:8080/feed2.xml")
    assert r.status_code == 400 and r.json()["reason"] == "ssrf_blocked"
    assert internet.lookups[host] == 2
    # A name answering public and private at once is refused outright.
    mixed = internet.name("mixed.public.test", [PUBLIC, "10.0.0.7"])
    r = add_feed(client, internet.url(mixed, "/feed.xml"))
    assert r.status_code == 400 and r.json()["reason"] == "ssrf_blocked"
    assert internet.private_connects() == []


# --- publisher transcripts and chapters (fetched during a poll) --------------------------------------------


def test_transcript_and_chapters_urls_are_guarded(
    started: Callable[..., TestClient], internet: Internet, caplog: pytest.LogCaptureFixture
) -> None:
    client = started("ingest", backfill_limit=-1)
    host = internet.name("feeds.public.test", [PUBLIC])
    rebind = internet.name("files.public.test", [PUBLIC], ["169.254.169.254"])
    port = internet.server.port
    internet.server.add("/secret", b"1\n00:00:00,000 --> 00:00:01,000\nstolen\n", "application/srt")
    items = []
    for n, target in enumerate(targets(port)):
        internet.server.add(f"/t{n}", b"", "text/plain", status=302, headers={"Location": target})
        internet.server.add(f"/c{n}", b"", "text/plain", status=307, headers={"Location": target})
        # Directly private, and public-looking with a redirect to the private target.
        items.append(item(2 * n, transcript=target, chapters=target))
        items.append(item(2 * n + 1, transcript=internet.url(host, f"/t{n}"), chapters=internet.url(host, f"/c{n}")))
    # DNS rebinding on the transcript host: the one lookup says public; the next would say metadata.
    internet.server.add("/ok.srt", b"1\n00:00:00,000 --> 00:00:02,000\nHello from the publisher.\n", "application/srt")
    items.append(item(99, transcript=internet.url(rebind, "/ok.srt")))
    internet.server.add("/feed.xml", rss("".join(items)), "application/rss+xml")
    with caplog.at_level(logging.INFO, logger="podbrief_ingest"):
        r = add_feed(client, internet.url(host, "/feed.xml"))
    assert r.status_code == 201, r.text
    assert r.json()["first_poll"]["emitted"] == len(items)
    feed_id = r.json()["feed"]["id"]
    episodes = client.get(f"/v1/feeds/{feed_id}/episodes", params={"limit": 100}, headers=KEY).json()["items"]
    by_guid = {e["guid"]: e for e in episodes}
    for n in range(len(PRIVATE_TARGETS) * 2):
        ep = by_guid[f"ep-{n}"]
        assert ep["transcript_source"] == "audio", ep
        assert "ssrf_blocked" in (ep["transcript_error"] or ""), ep
    assert by_guid["ep-99"]["transcript_source"] == "publisher"
    chapter_reasons = [
        getattr(rec, "reason", None) for rec in caplog.records if rec.getMessage() == "chapters not usable"
    ]
    assert len(chapter_reasons) == len(PRIVATE_TARGETS) * 2 and set(chapter_reasons) == {"ssrf_blocked"}
    assert internet.server.hits.get("/secret", 0) == 0
    assert internet.lookups[rebind] == 1
    assert internet.private_connects() == []


# --- enclosures (transcription) ----------------------------------------------------------------------------


async def _download(fetcher: Any, url: str) -> bytes:
    async with fetcher.fetch(url) as path:
        data: bytes = await asyncio.to_thread(Path(path).read_bytes)
        return data


def test_enclosure_downloads_are_guarded(started: Callable[..., TestClient], internet: Internet) -> None:
    client = started("transcription")
    fetcher = client.app.state.deps.fetcher
    host = internet.name("cdn.public.test", [PUBLIC])
    port = internet.server.port
    internet.server.add("/secret", b"ID3 secret", "audio/mpeg")
    internet.server.add("/ep.mp3", b"ID3 public audio", "audio/mpeg")
    assert client.portal.call(_download, fetcher, internet.url(host, "/ep.mp3")) == b"ID3 public audio"
    for n, target in enumerate(targets(port)):
        for url in (target, internet.url(host, f"/hop{n}")):
            internet.server.add(f"/hop{n}", b"", "text/plain", status=301, headers={"Location": target})
            with pytest.raises(PermanentError) as err:
                client.portal.call(_download, fetcher, url)
            assert err.value.reason in ("ssrf_blocked", "invalid_url"), (url, err.value)
    assert internet.server.hits.get("/secret", 0) == 0
    for bad in ("file:///etc/passwd", "ftp://cdn.public.test/ep.mp3"):
        with pytest.raises(PermanentError):
            client.portal.call(_download, fetcher, bad)
    # Rebinding: checked and connected on one lookup; the next connection's private answer is refused.
    rebind = internet.name("rebind-cdn.public.test", [PUBLIC], ["10.9.9.9"])
    assert client.portal.call(_download, fetcher, internet.url(rebind, "/ep.mp3")) == b"ID3 public audio"
    assert internet.lookups[rebind] == 1
    assert internet.private_connects() == []


def test_the_transcription_handler_uses_the_guarded_fetcher(
    started: Callable[..., TestClient], internet: Internet
) -> None:
    """The consumer's handler gets the same guarded fetcher: an EpisodeDiscovered pointing at the metadata
    service dead-letters without any connection to it."""
    from podbrief.events import ids
    from podbrief.events.base import new_event
    from podbrief.events.models import EpisodeDiscovered, EpisodeDiscoveredPayload, EpisodeRef
    from podbrief.events.topics import EPISODE_DISCOVERED, dlq_topic

    client = started("transcription")
    feed_url = "https://feeds.public.test/show.xml"
    ref = EpisodeRef(
        episode_id=ids.episode_id(feed_url, "g1"),
        feed_id=ids.feed_id(feed_url),
        feed_url=feed_url,
        show="Show",
        title="Episode",
        enclosure_url="http://169.254.169.254/latest/meta-data/",
    )
    event = new_event(
        EpisodeDiscovered,
        EpisodeDiscoveredPayload(episode=ref, guid="g1", enclosure_type="audio/mpeg"),
        key="k",
        correlation_id=ref.episode_id,
    )
    bus = client.app.state.service.bus
    client.portal.call(bus.publish, event)
    dlq = dlq_topic(EPISODE_DISCOVERED)
    end = time.monotonic() + 20
    while not bus.transport.records(dlq) and time.monotonic() < end:
        time.sleep(0.05)
    assert bus.transport.records(dlq), "the event was not dead-lettered"
    assert internet.connects == []


def test_feeds_registered_without_a_fetch_are_checked_too(
    started: Callable[..., TestClient], internet: Internet
) -> None:
    """validate=false and OPML import fetch nothing at once, but a URL the guard would refuse is refused at
    registration instead of being stored and failing every poll."""
    client = started("ingest")
    bad = [*targets(internet.server.port), "javascript:alert(1)", "file:///etc/passwd", "http://", "feeds.example.com"]
    for url in bad:
        r = client.post("/v1/feeds", json={"url": url, "validate": False}, headers=KEY)
        assert r.status_code == 400, (url, r.status_code, r.text)
    outlines = "".join(
        f'<outline type="rss" xmlns:x="y" xmlUrl="{u}"/>' for u in [*bad, "https://ok.public.test/f.xml"]
    )
    opml = f'<?xml version="1.0"?><opml version="2.0"><head/><body>{outlines}</body></opml>'
    r = client.post("/v1/opml", content=opml.replace(' xmlns:x="y"', ""), headers=KEY)
    assert r.status_code == 200, r.text
    assert len(r.json()["added"]) == 1
    assert {i["url"] for i in r.json()["invalid"]} == set(bad)
    assert client.get("/v1/feeds", headers=KEY).json()["total"] == 1
    assert internet.connects == []
