"""The ingest app as deployed: lifespan, admin API, problem details, OPML, metrics, and the events it emits
on podbrief.episode.discovered.v1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from podbrief.bus import MemoryTransport
from podbrief.events.topics import EPISODE_DISCOVERED
from podbrief.settings import NetSettings
from podbrief_ingest.app import create_app, poll_all_now
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer

from .conftest import API_KEY, discovered, item, rss, serve_pc20, withdrawals

pytestmark = pytest.mark.unit

AUTH = {"X-API-Key": API_KEY}


@pytest.fixture
def bus() -> Iterator[MemoryTransport]:
    t = MemoryTransport()
    asyncio.run(t.start())
    yield t


def test_add_feed_poll_and_browse(
    loopback: LoopbackServer,
    shared_dir: Path,
    make_settings: Callable[..., IngestSettings],
    bus: MemoryTransport,
) -> None:
    url = serve_pc20(loopback, shared_dir)
    with TestClient(create_app(make_settings(), transport=bus)) as client:
        assert client.get("/readyz").status_code == 200
        res = client.post("/v1/feeds", json={"url": url}, headers=AUTH)
        assert res.status_code == 201, res.text
        body = res.json()
        feed_id = body["feed"]["id"]
        assert body["created"] and body["first_poll"]["emitted"] == 3
        assert body["feed"]["title"] == "Podcasting 2.0" and body["feed"]["status"] == "active"
        assert body["feed"]["podcast_guid"] == "917393e3-1b1e-5cef-ace4-edaa54e1f810"

        events = discovered(bus)
        assert len(events) == 3 and all(r.topic == EPISODE_DISCOVERED for r in bus.records(EPISODE_DISCOVERED))
        for e in events:
            assert e.event_type == "episode.discovered" and str(e.payload.episode.feed_id) == feed_id
            assert e.payload.episode.enclosure_url.startswith(loopback.base_url + "/pc20/")  # type: ignore[union-attr]
            assert e.payload.transcript is not None and e.payload.transcript.unpack().source == "publisher"
            assert e.payload.episode.published_at is not None and e.payload.episode.feed_url == url

        again = client.post("/v1/feeds", json={"url": url}, headers=AUTH)
        assert again.status_code == 200 and not again.json()["created"]

        poll = client.post(f"/v1/feeds/{feed_id}/poll", headers=AUTH)
        assert poll.status_code == 200 and poll.json()["outcome"] == "not_modified"
        assert len(discovered(bus)) == 3

        # Episodes, newest first, in pages.
        seen: list[dict[str, object]] = []
        cursor = None
        while True:
            page = client.get(
                f"/v1/feeds/{feed_id}/episodes",
                params={"limit": 20, **({"cursor": cursor} if cursor else {})},
                headers=AUTH,
            ).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(seen) == 56 and len({e["id"] for e in seen}) == 56
        assert seen[0]["guid"] == "PC2057" and seen[0]["transcript_source"] == "publisher"
        assert sum(e["status"] == "emitted" for e in seen) == 3
        dates = [e["published_at"] for e in seen]
        assert dates == sorted(dates, reverse=True)
        bad = client.get(f"/v1/feeds/{feed_id}/episodes", params={"cursor": "garbage"}, headers=AUTH)
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"

        listing = client.get("/v1/feeds", headers=AUTH).json()
        assert listing["total"] == 1 and listing["items"][0]["id"] == feed_id
        one = client.get(f"/v1/feeds/{feed_id}", headers=AUTH).json()
        assert one["polls"] == 2 and one["not_modified_count"] == 1

        metrics = client.get("/metrics").text
        assert 'podbrief_ingest_feed_polls_total{outcome="ok"} 1.0' in metrics
        assert 'podbrief_ingest_feed_polls_total{outcome="not_modified"} 1.0' in metrics
        assert "podbrief_ingest_not_modified_total 1.0" in metrics
        assert 'podbrief_ingest_episodes_discovered_total{status="emitted"} 3.0' in metrics
        assert 'podbrief_ingest_episodes_discovered_total{status="backlog"} 53.0' in metrics
        assert "podbrief_ingest_poll_seconds_count 2.0" in metrics

        assert withdrawals(bus) == []
        assert client.delete(f"/v1/feeds/{feed_id}", headers=AUTH).status_code == 204
        [removed] = withdrawals(bus)
        assert str(removed.payload.feed_id) == feed_id and removed.payload.reason == "removed"
        gone = client.get(f"/v1/feeds/{feed_id}", headers=AUTH)
        assert gone.status_code == 404 and gone.json()["status"] == 404


def test_auth_and_problem_details(
    loopback: LoopbackServer, make_settings: Callable[..., IngestSettings], bus: MemoryTransport
) -> None:
    html = loopback.add("/page.html", "<!DOCTYPE html><html><body>hello</body></html>", "text/html")
    bomb = loopback.add(
        "/bomb.xml",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><rss>&a;</rss>',
        "application/rss+xml",
    )
    slow = loopback.add("/slow.xml", rss([item(1)]), "application/rss+xml", delay_s=3.0)
    settings = make_settings(net=NetSettings(allowed_networks=("127.0.0.0/8",), read_timeout_s=1.0))
    with TestClient(create_app(settings, transport=bus)) as client:
        assert client.get("/v1/feeds").status_code == 401
        wrong = client.get("/v1/feeds", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
        for url, status, reason in (
            (html, 422, "not_a_feed"),
            (bomb, 422, "xml_entities"),
            (slow, 504, "timeout"),
            ("http://169.254.169.254/latest/meta-data/", 400, "ssrf_blocked"),
            ("gopher://example.com/", 400, "bad_scheme"),
            (loopback.url("/missing.xml"), 422, "http_404"),
        ):
            res = client.post("/v1/feeds", json={"url": url}, headers=AUTH)
            assert res.status_code == status, (url, res.text)
            problem = res.json()
            assert res.headers["content-type"] == "application/problem+json"
            assert problem["status"] == status and problem["reason"] == reason and problem["detail"]
        invalid = client.post("/v1/feeds", json={}, headers=AUTH)
        assert invalid.status_code == 422 and invalid.json()["title"] == "Invalid request"
        assert client.get("/v1/feeds", headers=AUTH).json()["total"] == 0
        assert client.get("/v1/feeds/not-a-uuid", headers=AUTH).status_code == 422
        assert client.post("/v1/feeds/00000000-0000-0000-0000-000000000000/poll", headers=AUTH).status_code == 404
    assert discovered(bus) == []


def test_admin_api_closed_without_a_key(make_settings: Callable[..., IngestSettings], bus: MemoryTransport) -> None:
    from podbrief.settings import HttpSettings

    with TestClient(create_app(make_settings(http=HttpSettings(port=8001)), transport=bus)) as client:
        res = client.get("/v1/feeds", headers={"X-API-Key": "anything"})
        assert res.status_code == 403 and "INGEST_HTTP__ADMIN_API_KEY" in res.json()["detail"]


def test_opml_import_then_poll_all_now(
    loopback: LoopbackServer, make_settings: Callable[..., IngestSettings], bus: MemoryTransport
) -> None:
    a = loopback.add("/a.xml", rss([item(n) for n in range(1, 6)], title="Show A"), "application/rss+xml")
    b = loopback.add("/b.xml", rss([item(n) for n in range(1, 3)], title="Show B & Co"), "application/rss+xml")
    broken = loopback.add("/broken.xml", "no markup here, just text", "application/rss+xml")
    opml = (
        f'<?xml version="1.0"?><opml version="2.0"><head><title>mine</title></head><body>'
        f'<outline text="group"><outline type="rss" text="A" xmlUrl="{a}"/>'
        f'<outline type="rss" text="B" xmlUrl="{b}"/></outline>'
        f'<outline type="rss" text="X" xmlUrl="{broken}"/>'
        f'<outline type="rss" text="F" xmlUrl="file:///etc/passwd"/></body></opml>'
    )
    app = create_app(make_settings(), transport=bus)
    with TestClient(app) as client:
        res = client.post("/v1/opml", content=opml, headers={**AUTH, "Content-Type": "text/x-opml"})
        assert res.status_code == 200, res.text
        assert len(res.json()["added"]) == 3 and len(res.json()["invalid"]) == 1
        again = client.post("/v1/opml", content=opml, headers=AUTH).json()
        assert again["added"] == [] and len(again["existing"]) == 3
        assert client.post("/v1/opml", content=b"<rss/>", headers=AUTH).status_code == 422

        # The embedded runner's entry point: poll everything once, wait for it, get a report.
        report = client.portal.call(poll_all_now, app.state.deps)  # type: ignore[union-attr]
        assert (report.feeds, report.ok, report.failed) == (3, 2, 1)
        assert report.episodes_emitted == 3 + 2 and report.episodes_backlog == 2
        assert next(iter(report.errors.values())).startswith("the feed is not well-formed XML")
        assert len(discovered(bus)) == 5
        feeds = {f["url"]: f for f in client.get("/v1/feeds", headers=AUTH).json()["items"]}
        assert feeds[broken]["status"] == "failing" and feeds[broken]["last_error_reason"] == "malformed_xml"
        assert feeds[b]["title"] == "Show B & Co"

        exported = client.get("/v1/opml", headers=AUTH)
        assert exported.headers["content-type"].startswith("text/x-opml")
        assert a in exported.text and 'title="Show B &amp; Co"' in exported.text


def test_background_loop_polls_due_feeds(
    loopback: LoopbackServer, make_settings: Callable[..., IngestSettings], bus: MemoryTransport
) -> None:
    import time

    url = loopback.add("/due.xml", rss([item(n) for n in range(1, 3)]), "application/rss+xml")
    settings = make_settings(poll_enabled=True, poll_tick_s=0.1, outbox_sweep_s=0.1)
    with TestClient(create_app(settings, transport=bus)) as client:
        res = client.post(
            "/v1/opml",
            headers=AUTH,
            content=f'<opml version="2.0"><body><outline xmlUrl="{url}"/></body></opml>',
        )
        assert len(res.json()["added"]) == 1
        deadline = time.monotonic() + 15
        while len(discovered(bus)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {e.payload.guid for e in discovered(bus)} == {"ep-1", "ep-2"}
        assert client.get("/healthz").json()["status"] == "ok"
