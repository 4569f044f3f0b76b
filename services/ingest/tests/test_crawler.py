"""The crawler against a real loopback HTTP server and SQLite: conditional GET, publisher transcripts,
hostile input, schedules, politeness, and exactly-once emission across polls, restarts and two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from podbrief.bus import MemoryTransport
from podbrief.clock import utcnow
from podbrief.errors import PermanentError
from podbrief.events.ids import episode_id, event_id
from podbrief.settings import NetSettings
from podbrief_ingest.adapters.repo import NewEpisode
from podbrief_ingest.api import EpisodeOut
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer, Route

from .conftest import discovered, item, replica, rss, serve_pc20, withdrawals

pytestmark = pytest.mark.unit

Settings = Callable[..., IngestSettings]


async def test_first_poll_emits_newest_with_publisher_transcripts_then_304(
    loopback: LoopbackServer, shared_dir: Path, make_settings: Settings, transport: MemoryTransport
) -> None:
    url = serve_pc20(loopback, shared_dir)
    async with replica(make_settings(), transport) as deps:
        feed, created, first = await deps.crawler.add_feed(url)
        assert created and first is not None
        assert (first.outcome, first.emitted, first.backlog, first.rejected) == ("ok", 3, 53, 0)
        events = discovered(transport)
        assert {e.payload.guid for e in events} == {"PC2057", "PC2056", "PC2055"}
        for e in events:
            p = e.payload
            assert e.key == str(p.episode.episode_id) and e.event_id == event_id(
                "episode.discovered", p.episode.episode_id
            )
            assert p.episode.episode_id == episode_id(url, p.guid, p.episode.enclosure_url)
            assert p.episode.feed_id == feed.id and p.episode.show == "Podcasting 2.0"
            assert p.episode.enclosure_url and p.episode.enclosure_url.startswith(loopback.url("/pc20/"))
            assert p.enclosure_type == "audio/mpeg" and p.transcripts[0].type == "application/srt"
            assert [c.title for c in p.chapters] == ["Intro", "Value4Value"]
            # The podcast:person tags travel with the episode, for extraction to name who said what.
            hosts = [x.name for x in p.episode.people if x.role == "host"]
            assert hosts[:2] == ["Adam Curry", "Dave Jones"] and p.episode.people[0].href == "http://curry.com"
            assert {x.group for x in p.episode.people} == {"cast"}
            assert p.transcript is not None
            t = p.transcript.unpack()
            assert t.source == "publisher" and t.segments[1].text == "The board meeting starts now."
        rows, _ = await deps.repo.list_episodes(feed.id, limit=100, cursor=None)
        assert len(rows) == 56
        assert {r.status for r in rows} == {"emitted", "backlog"}
        assert {r.transcript_source for r in rows if r.status == "emitted"} == {"publisher"}
        hits = dict(loopback.hits)

        second = await deps.crawler.poll_feed(feed.id)
        assert second.outcome == "not_modified" and second.emitted == 0
        assert len(discovered(transport)) == 3
        _, headers = [r for r in loopback.requests if r[0] == "/pc20rss.xml"][-1]
        assert headers["if-none-match"] == '"pc20-v1"' and "gzip" in headers["accept-encoding"]
        # Nothing but the feed itself was fetched again.
        assert {k: v for k, v in loopback.hits.items() if v != hits.get(k)} == {"/pc20rss.xml": 2}
        stored = await deps.repo.get_feed(feed.id)
        assert stored is not None and stored.not_modified_count == 1 and stored.last_outcome == "not_modified"
        assert stored.etag == '"pc20-v1"' and stored.podcast_guid == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
        assert deps.metrics.not_modified._value.get() == 1


async def test_last_modified_and_new_items(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    lm = "Wed, 07 Jan 2026 10:00:00 GMT"
    state = {"body": rss([item(n) for n in range(1, 6)]).encode()}

    def answer(headers: dict[str, str]) -> Route:
        if headers.get("if-modified-since") == lm:
            return Route(b"", status=304)
        return Route(state["body"], "application/rss+xml", headers={"Last-Modified": lm})

    url = loopback.url("/lm.xml")
    loopback.routes["/lm.xml"] = Route(b"", dynamic=answer)
    async with replica(make_settings(backfill_limit=2), transport) as deps:
        feed, _, first = await deps.crawler.add_feed(url)
        assert first is not None and first.emitted == 2
        assert (await deps.crawler.poll_feed(feed.id)).outcome == "not_modified"
        # A new episode: the publisher's Last-Modified changes, every new item is emitted (no backfill cap).
        lm = "Thu, 08 Jan 2026 10:00:00 GMT"
        state["body"] = rss([item(n) for n in range(1, 8)]).encode()
        third = await deps.crawler.poll_feed(feed.id)
        assert (third.outcome, third.emitted) == ("ok", 2)
        assert {e.payload.guid for e in discovered(transport)} == {"ep-5", "ep-4", "ep-7", "ep-6"}


async def test_transcript_failure_falls_back_to_audio(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    loopback.add("/bad.json", b"{not json", "application/json")
    loopback.add("/good.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\n<v Ann>Hi there\n", "text/vtt")
    extra_missing = f'<podcast:transcript url="{loopback.url("/missing.srt")}" type="application/srt"/>'
    extra_bad_then_good = (
        f'<podcast:transcript url="{loopback.url("/good.vtt")}" type="text/vtt"/>'
        f'<podcast:transcript url="{loopback.url("/bad.json")}" type="application/json"/>'
    )
    url = loopback.add(
        "/t.xml",
        rss([item(1, extra=extra_missing), item(2, extra=extra_bad_then_good)]),
        "application/rss+xml",
    )
    async with replica(make_settings(), transport) as deps:
        feed, _, first = await deps.crawler.add_feed(url)
        assert first is not None and first.emitted == 2
        by_guid = {e.payload.guid: e.payload for e in discovered(transport)}
        assert by_guid["ep-1"].transcript is None and by_guid["ep-1"].transcripts  # links still travel
        t2 = by_guid["ep-2"].transcript
        assert t2 is not None and t2.unpack().segments[0].speaker == "Ann"  # JSON was tried first, then VTT
        rows = {r.guid: r for r in (await deps.repo.list_episodes(feed.id, limit=10, cursor=None))[0]}
        assert rows["ep-1"].transcript_source == "audio" and "http_404" in (rows["ep-1"].transcript_error or "")
        assert rows["ep-2"].transcript_source == "publisher" and "bad_transcript" in (
            rows["ep-2"].transcript_error or ""
        )


async def test_non_audio_enclosure_is_recorded_not_emitted(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    body = rss(
        [
            item(1),
            item(2, enclosure_type="image/jpeg", enclosure_url="https://cdn.example.com/cover.jpg"),
            item(3, enclosure_type="text/html", enclosure_url="https://cdn.example.com/page"),
        ]
    )
    url = loopback.add("/mixed.xml", body, "application/rss+xml")
    async with replica(make_settings(), transport) as deps:
        feed, _, first = await deps.crawler.add_feed(url)
        assert first is not None and (first.emitted, first.rejected) == (1, 2)
        assert [e.payload.guid for e in discovered(transport)] == ["ep-1"]
        rows = {r.guid: r for r in (await deps.repo.list_episodes(feed.id, limit=10, cursor=None))[0]}
        assert rows["ep-2"].status == "rejected" and "enclosure_not_audio" in (rows["ep-2"].error or "")
        assert rows["ep-3"].status == "rejected"
        # The same reason code in the metrics and in the episodes API.
        assert deps.metrics.episodes_rejected.labels("enclosure_not_audio")._value.get() == 2
        assert EpisodeOut.model_validate(rows["ep-2"]).model_dump()["error_reason"] == "enclosure_not_audio"
        # A rejected item is known: later polls do not retry or emit it.
        loopback.routes["/mixed.xml"].headers["ETag"] = '"changed"'
        again = await deps.crawler.poll_feed(feed.id)
        assert again.outcome == "ok" and again.emitted == 0 and len(discovered(transport)) == 1


BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;">]><rss><channel><title>&lol2;</title></channel></rss>'
)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bomb", "xml_entities"),
        ("malformed", "malformed_xml"),
        ("html", "not_a_feed"),
        ("oversized", "too_large"),
        ("slow", "timeout"),
        ("loop", "redirect_loop"),
        ("ssrf_redirect", "ssrf_blocked"),
        ("server_error", "http_5xx"),
        ("gone", "http_410"),
    ],
)
async def test_hostile_poll_is_recorded_and_loses_nothing(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport, case: str, reason: str
) -> None:
    good = rss([item(n) for n in range(1, 5)])
    url = loopback.add("/feed.xml", good, "application/rss+xml", headers={"ETag": '"1"'})
    settings = make_settings(
        max_feed_bytes=4096,
        net=NetSettings(allowed_networks=("127.0.0.0/8",), read_timeout_s=1.5, connect_timeout_s=10),
    )
    async with replica(settings, transport) as deps:
        feed, _, first = await deps.crawler.add_feed(url)
        assert first is not None and first.emitted == 3
        hostile = {
            "bomb": Route(BOMB.encode(), "application/rss+xml"),
            "malformed": Route(b"no markup here, just text", "application/rss+xml"),
            "html": Route(b"<!DOCTYPE html><html><body>Moved to our new site!</body></html>", "text/html"),
            "oversized": Route(rss([item(n) for n in range(1, 60)]).encode(), "application/rss+xml"),
            "slow": Route(good.encode(), "application/rss+xml", delay_s=4.0),
            "loop": Route(b"", status=302, headers={"Location": "/feed-b.xml"}),
            "ssrf_redirect": Route(b"", status=302, headers={"Location": "http://169.254.169.254/latest/"}),
            "server_error": Route(b"oops", "text/plain", status=503),
            "gone": Route(b"gone", "text/plain", status=410),
        }[case]
        loopback.routes["/feed.xml"] = hostile
        loopback.add("/feed-b.xml", b"", status=302, headers={"Location": "/feed.xml"})
        result = await deps.crawler.poll_feed(feed.id)
        assert (result.outcome, result.reason) == ("error", reason)
        stored = await deps.repo.get_feed(feed.id)
        assert stored is not None
        assert stored.status == ("gone" if case == "gone" else "failing")
        assert stored.error_count == 1 and stored.last_error_reason == reason and stored.last_error
        assert stored.title == "Test Show" and stored.etag == '"1"'  # earlier state kept
        next_at = (
            stored.next_poll_at if stored.next_poll_at.tzinfo else stored.next_poll_at.replace(tzinfo=utcnow().tzinfo)
        )
        assert next_at > utcnow() + timedelta(seconds=settings.error_backoff_base_s * 0.5)
        assert await deps.repo.episode_count(feed.id) == 4 and len(discovered(transport)) == 3
        assert deps.metrics.parse_failures.labels(reason)._value.get() == 1
        # A second failure doubles the backoff; recovery resets the count and emits nothing twice.
        await deps.crawler.poll_feed(feed.id)
        assert (await deps.repo.get_feed(feed.id)).error_count == 2  # type: ignore[union-attr]
        loopback.add("/feed.xml", good, "application/rss+xml", headers={"ETag": '"1"'})
        recovered = await deps.crawler.poll_feed(feed.id)
        assert recovered.outcome == "not_modified"
        stored = await deps.repo.get_feed(feed.id)
        assert stored is not None and stored.status == "active" and stored.error_count == 0
        assert len(discovered(transport)) == 3


async def test_ssrf_refused_without_allow_list(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    url = loopback.add("/feed.xml", rss([item(1)]), "application/rss+xml")
    async with replica(make_settings(net=NetSettings()), transport) as deps:
        for target in (
            url,
            url.replace("127.0.0.1", "localhost"),
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:80/feed",
            "file:///etc/passwd",
        ):
            with pytest.raises(PermanentError) as err:
                await deps.crawler.add_feed(target)
            assert err.value.reason in ("ssrf_blocked", "bad_scheme")
    assert loopback.hits.get("/feed.xml", 0) == 0 and discovered(transport) == []


async def test_block_moves_and_permanent_redirects(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    new_url = loopback.add("/new-home.xml", rss([item(n) for n in range(1, 4)]), "application/rss+xml")
    moving = rss([item(n) for n in range(1, 3)], f"<itunes:new-feed-url>{new_url}</itunes:new-feed-url>")
    old_url = loopback.add("/old-home.xml", moving, "application/rss+xml")
    async with replica(make_settings(backfill_limit=-1), transport) as deps:
        feed, _, first = await deps.crawler.add_feed(old_url)
        assert first is not None and first.emitted == 2
        moved = await deps.repo.get_feed(feed.id)
        assert moved is not None and moved.url == new_url and moved.moved_from == [old_url]
        assert moved.source_url == old_url
        second = await deps.crawler.poll_feed(feed.id)
        # Same guids at the new home keep their ids (they hash the source URL): only ep-3 is new.
        assert second.emitted == 1 and {e.payload.guid for e in discovered(transport)} == {
            "ep-1",
            "ep-2",
            "ep-3",
        }
        assert loopback.hits["/new-home.xml"] == 1

        # A permanent redirect is recorded as the feed's new URL; a temporary one is not.
        final = loopback.add("/final.xml", rss([item(n) for n in range(1, 4)]), "application/rss+xml")
        loopback.add("/new-home.xml", b"", status=301, headers={"Location": "/final.xml"})
        await deps.crawler.poll_feed(feed.id)
        redirected = await deps.repo.get_feed(feed.id)
        assert redirected is not None and redirected.url == final
        assert redirected.moved_from == [old_url, new_url]

        # podcast:block: nothing more is emitted, the feed is marked and polled rarely.
        loopback.add(
            "/final.xml",
            rss([item(n) for n in range(1, 6)], "<podcast:block>yes</podcast:block>"),
            "application/rss+xml",
        )
        blocked = await deps.crawler.poll_feed(feed.id)
        assert blocked.outcome == "blocked" and len(discovered(transport)) == 3
        stored = await deps.repo.get_feed(feed.id)
        assert stored is not None and stored.status == "blocked"
        assert stored.poll_interval_s == deps.settings.max_poll_interval_s
        # Delivery learns of it (its insight pages answer 410), again on every poll that still finds the block.
        [withdrawn] = withdrawals(transport)
        assert withdrawn.payload.feed_id == feed.id and withdrawn.payload.reason == "blocked"
        assert withdrawn.key == str(feed.id)
        await deps.crawler.poll_feed(feed.id)
        assert [w.payload.reason for w in withdrawals(transport)] == ["blocked", "blocked"]

    async with replica(make_settings(), transport) as deps:
        url = loopback.add("/blocked.xml", rss([item(1)], "<podcast:block>yes</podcast:block>"), "application/rss+xml")
        with pytest.raises(PermanentError) as err:
            await deps.crawler.add_feed(url)
        assert err.value.reason == "blocked"


async def test_two_replicas_and_restarts_emit_each_episode_once(
    loopback: LoopbackServer, shared_dir: Path, make_settings: Settings, transport: MemoryTransport
) -> None:
    url = serve_pc20(loopback, shared_dir)
    other = loopback.add("/other.xml", rss([item(n) for n in range(1, 10)]), "application/rss+xml")
    settings = make_settings(backfill_limit=-1)
    async with replica(settings, transport) as a, replica(settings, transport) as b:
        assert a.crawler.owner != b.crawler.owner
        await a.crawler.add_feed(url, validate=False)
        await b.crawler.add_feed(other, validate=False)
        await b.crawler.add_feed(url, validate=False)  # the same URL again: one feed
        assert await a.repo.count_feeds() == 2
        # Both replicas poll every feed at once, twice over.
        reports = await asyncio.gather(
            a.crawler.poll_all(), b.crawler.poll_all(), a.crawler.poll_all(), b.crawler.poll_all()
        )
        # Which call polls which feed is a race (a second call on a replica may join the first's polls or claim a
        # feed first), so the reports only show that both feeds were polled; exactly-once is checked on the bus.
        assert sum(r.ok for r in reports) >= 2
        assert sum(r.failed for r in reports) == 0
    events = discovered(transport)
    assert len(events) == 65 and len({e.payload.episode.episode_id for e in events}) == 65
    assert len({e.event_id for e in events}) == 65

    # The feed changes (a new validator), so a restarted pair re-reads everything: still nothing twice.
    loopback.routes["/pc20rss.xml"].headers["ETag"] = '"pc20-v2"'
    async with replica(settings, transport) as a2, replica(settings, transport) as b2:
        reports = await asyncio.gather(a2.crawler.poll_all(), b2.crawler.poll_all())
        assert sum(r.episodes_emitted for r in reports) == 0
    assert len(discovered(transport)) == 65


async def test_database_and_outbox_claims_are_exclusive(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    """The guarantees underneath: the first insert of an episode wins, and one outbox row is claimed by
    exactly one replica, even when both try at the same moment."""
    url = loopback.add("/f.xml", rss([item(1)]), "application/rss+xml")
    settings = make_settings()
    async with replica(settings, transport) as a, replica(settings, transport) as b:
        feed, _, _ = await a.crawler.add_feed(url, validate=False)
        now = utcnow()
        row = {
            "id": episode_id(url, "x"),
            "feed_id": feed.id,
            "guid": "x",
            "title": "x",
            "sort_at": now,
            "transcripts": [],
            "persons": [],
            "status": "emitted",
            "discovered_at": now,
        }
        outbox = {
            "event_id": event_id("episode.discovered", row["id"]),
            "episode_id": row["id"],
            "topic": "t",
            "event": "{}",
            "created_at": now,
            "attempts": 0,
        }
        assert await a.repo.claim_feed(feed.id, "A", now, 60)
        assert not await b.repo.claim_feed(feed.id, "B", now, 60)  # leased
        ids_a = await a.repo.record_episodes([NewEpisode(row, outbox)], feed.id, "A", {})
        ids_b = await b.repo.record_episodes([NewEpisode(row, outbox)], feed.id, "B", {})
        assert len(ids_a) == 1 and ids_b == []
        claims = await asyncio.gather(
            *(r.repo.claim_outbox(ids_a, name, now, 60) for r, name in ((a, "A"), (b, "B"), (a, "A2"), (b, "B2")))
        )
        assert sorted(len(c) for c in claims) == [0, 0, 0, 1]


async def test_publish_failure_leaves_outbox_for_the_sweep(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    url = loopback.add("/f.xml", rss([item(n) for n in range(1, 4)]), "application/rss+xml")
    settings = make_settings()
    async with replica(settings, transport) as a:
        real = a.outbox.publish

        async def broken(_event: object) -> None:
            raise ConnectionError("broker down")

        a.outbox.publish = broken
        _, _, first = await a.crawler.add_feed(url)
        # Written to the outbox (emitted == queued for publishing), but nothing reached the bus.
        assert first is not None and first.emitted == 3 and discovered(transport) == []
        assert await a.repo.pending_count() == 3
        a.outbox.publish = real
        assert await a.outbox.dispatch() == 3
        assert await a.outbox.dispatch() == 0
    assert sorted(e.payload.guid for e in discovered(transport)) == ["ep-1", "ep-2", "ep-3"]


async def test_due_schedule_backoff_and_per_host_limit(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    for n in range(6):
        loopback.add(f"/slow{n}.xml", rss([item(1)]), "application/rss+xml", delay_s=0.3)
    settings = make_settings(per_host_concurrency=2, poll_jitter=0.1, min_poll_interval_s=600)
    async with replica(settings, transport) as deps:
        for n in range(6):
            await deps.crawler.add_feed(loopback.url(f"/slow{n}.xml"), validate=False)
        report = await deps.crawler.poll_due()
        assert report.feeds == 6 and report.ok == 6
        assert deps.crawler.fetcher.limiter.peak["127.0.0.1"] == 2
        # Nothing is due right after a poll: each feed got a jittered next time within the bounds.
        assert (await deps.crawler.poll_due()).feeds == 0
        for f in await deps.repo.list_feeds():
            assert f.next_poll_at is not None and f.poll_interval_s >= 600


async def test_concurrent_polls_of_one_feed_in_one_replica_are_joined(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    url = loopback.add("/j.xml", rss([item(1), item(2)]), "application/rss+xml", delay_s=0.3)
    async with replica(make_settings(), transport) as deps:
        feed, _, _ = await deps.crawler.add_feed(url, validate=False)
        results = await asyncio.gather(deps.crawler.poll_feed(feed.id), deps.crawler.poll_all())
        assert results[0].outcome == "ok" and results[1].ok == 1 and results[1].skipped == 0
        assert loopback.hits["/j.xml"] == 1 and len(discovered(transport)) == 2


async def test_a_repaired_feed_with_drops_counts_them_and_resolves_against_where_it_was_fetched(
    loopback: LoopbackServer, make_settings: Settings, transport: MemoryTransport
) -> None:
    """Issue 16: what was dropped and what was repaired shows in the metrics; relative URLs resolve against the
    URL the document came from after redirects (the feed keeps its registered identity)."""
    doc = rss(
        [
            item(1, enclosure_url="audio/ep1.mp3"),
            item(2, guid="ep-1"),  # repeats ep-1's guid
            "<item><title>no guid, no enclosure</title></item>",
            item(3, extra="<itunes:duration>61</itunes:duration>"),
        ]
    ).replace('xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"', "")  # used, never declared
    loopback.add("/pod/feed.xml", doc, "application/rss+xml")
    url = loopback.add("/old.xml", b"", status=302, headers={"Location": "/pod/feed.xml"})
    async with replica(make_settings(backfill_limit=-1), transport) as deps:
        _, _, first = await deps.crawler.add_feed(url)
        assert first is not None and (first.outcome, first.emitted) == ("ok", 2)
        by_guid = {e.payload.guid: e.payload for e in discovered(transport)}
        assert by_guid["ep-1"].episode.enclosure_url == loopback.url("/pod/audio/ep1.mp3")
        assert by_guid["ep-1"].episode.episode_id == episode_id(url, "ep-1")
        assert by_guid["ep-3"].duration_s == 61
        m = deps.metrics
        assert m.items_dropped.labels("duplicate_guid")._value.get() == 1
        assert m.items_dropped.labels("no_guid_no_enclosure")._value.get() == 1
        assert m.feeds_recovered.labels("undeclared_prefix")._value.get() == 1
        assert m.feeds_recovered.labels("encoding")._value.get() == 0
