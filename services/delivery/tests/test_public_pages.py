"""The public pages on the app: an insight's page (content, related insights, topic, sign-up box, meta tags,
feedback for a signed-in reader), 404 and 410 Gone after a FeedWithdrawn event, topic pages and trending
topics, search through a fake of clustering's API (bad and empty queries, the rate limit, clustering down),
robots and sitemap, and escaping of feed-supplied text in every field."""

from __future__ import annotations

import html as htmlmod
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from podbrief.bus import MemoryTransport
from podbrief.clock import utcnow
from podbrief.embeddings import Embedder
from podbrief.errors import PermanentError, UnavailableError
from podbrief.events import FeedWithdrawn, FeedWithdrawnPayload, new_event
from podbrief_delivery.adapters.clustering import SearchHit
from podbrief_delivery.app import create_app
from podbrief_delivery.handlers import on_feed_withdrawn, on_insight_clustered
from podbrief_delivery.settings import RateLimitSettings
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import LABELS, clustered, day_events, make_settings

pytestmark = pytest.mark.unit

EVIL = '<script>alert("x")</script>&"\''


class Site:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient, events: list[Any]) -> None:
        self.app, self.client, self.events = app, client, events
        self.searches: list[str] = []
        self.search_down = False

    @property
    def deps(self) -> Any:
        return self.app.state.deps

    def by_text(self, start: str) -> Any:
        return next(e for e in self.events if e.payload.insight.text.startswith(start))

    async def fake_search(self, q: str, limit: int) -> list[SearchHit]:
        self.searches.append(q)
        if self.search_down:
            raise UnavailableError("clustering is down")
        if q == "refused by clustering":
            raise PermanentError("clustering search refused the query (422)")
        words = set(q.lower().split())
        hits = [e for e in self.events if words & set(e.payload.insight.text.lower().split())]
        return [SearchHit(insight_id=e.payload.insight.insight_id, score=0.9) for e in hits][:limit]


@pytest.fixture
async def site(tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder) -> AsyncIterator[Site]:
    settings = make_settings(tmp_path, smtp_sink.port, rate_limits=RateLimitSettings(search_per_ip=5, signup_per_ip=50))
    transport = MemoryTransport()
    await transport.start()
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app):
        events = day_events(embedder, published_at=utcnow() - timedelta(hours=6))
        for ev in events:
            await on_insight_clustered(ev, repo=app.state.deps.repo, embedder=embedder)
        s = Site(app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver"), events)
        app.state.deps.search = s.fake_search
        yield s
        await s.client.aclose()


def text_of(page: str) -> str:
    return htmlmod.unescape(re.sub(r"<[^>]+>", " ", page))


def meta(page: str, key: str) -> str | None:
    m = re.search(rf'<meta (?:property|name)="{re.escape(key)}" content="([^"]*)"', page)
    return htmlmod.unescape(m.group(1)) if m else None


async def test_insight_page_shows_the_insight_its_related_insights_topic_and_signup(site: Site) -> None:
    ev = site.by_text("Home batteries now pay")
    iid = ev.payload.insight.insight_id
    r = await site.client.get(f"/insights/{iid}")
    assert r.status_code == 200, r.text
    page, seen = r.text, text_of(r.text)
    ins, ep = ev.payload.insight, ev.payload.episode
    assert ins.text in seen and ins.quote in seen
    assert ep.show in seen and ep.title in seen
    assert f'href="https://cdn.example.com/ep.mp3#t={int(ins.start_s)}"' in page  # audio at the timestamp
    assert ep.published_at.date().isoformat() in page
    # Related insights: the other members of the cluster, from other shows, each linking to its own page.
    mates = [e for e in site.events if e.payload.cluster_id == ev.payload.cluster_id and e is not ev]
    assert mates
    for m in mates:
        assert f'href="http://testserver/insights/{m.payload.insight.insight_id}"' in page
        assert m.payload.episode.show != ep.show
    assert f'href="http://testserver/topics/{ev.payload.cluster_id}"' in page
    assert LABELS["batt"] in seen
    assert '<form method="post" action="/signup"' in page and 'id="signup-box"' in page
    # Landmarks, and nothing private.
    for landmark in ("<header", "<nav", "<main", "<footer"):
        assert landmark in page
    assert "?t=" not in page and "subscriber" not in page.lower()
    assert r.headers["cache-control"].startswith("public")


async def test_insight_page_meta_tags_and_canonical_url(site: Site) -> None:
    ev = site.by_text("Falling lithium prices")
    iid = ev.payload.insight.insight_id
    page = (await site.client.get(f"/insights/{iid}", params={"utm_source": "x"})).text
    canonical = f"http://testserver/insights/{iid}"
    assert f'<link rel="canonical" href="{canonical}">' in page
    assert meta(page, "og:url") == canonical
    assert meta(page, "og:type") == "article"
    assert meta(page, "og:title") == ev.payload.insight.text
    assert ev.payload.insight.quote in (meta(page, "og:description") or "")
    assert meta(page, "twitter:card") == "summary"
    assert meta(page, "twitter:title") == ev.payload.insight.text
    assert meta(page, "twitter:description") == meta(page, "og:description")
    assert meta(page, "robots") is None  # the public page is indexable


async def test_a_signed_in_reader_gets_feedback_links_that_work(site: Site) -> None:
    from podbrief_delivery.models import Subscriber

    now = utcnow()
    sub = Subscriber(
        id=uuid.uuid4(),
        email="reader@example.org",
        status="active",
        interests="batteries",
        topics=[],
        followed_shows=[],
        timezone="UTC",
        delivery_hour=7,
        quiet_day_policy="shorter",
        interest_phrases=[],
        created_at=now,
        updated_at=now,
    )
    assert await site.deps.repo.add_subscriber(sub)
    iid = site.by_text("Home batteries now pay").payload.insight.insight_id
    url = site.deps.links.insight_page(iid, sub.id)
    assert url.startswith(f"http://testserver/insights/{iid}?t=")
    r = await site.client.get(url.removeprefix("http://testserver"))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert meta(r.text, "robots") == "noindex"
    assert 'id="signup-box"' not in r.text
    up = re.search(r'<a href="(http://testserver/feedback\?t=[^"]+)">👍', r.text)
    assert up
    done = await site.client.get(htmlmod.unescape(up.group(1)).removeprefix("http://testserver"))
    assert done.status_code == 200 and "Thanks" in done.text
    assert [f.kind for f in await site.deps.repo.feedback(sub.id)] == ["up"]
    # The canonical URL a reader shares carries no token.
    assert f'<link rel="canonical" href="http://testserver/insights/{iid}">' in r.text
    # A forged token is a plain public view.
    forged = await site.client.get(f"/insights/{iid}", params={"t": "forged"})
    assert forged.status_code == 200 and 'id="feedback"' not in forged.text and 'id="signup-box"' in forged.text


async def test_unknown_insight_and_topic_answer_404(site: Site) -> None:
    r = await site.client.get(f"/insights/{uuid.uuid4()}")
    assert r.status_code == 404 and "Insight not found" in r.text
    assert "<main" in r.text and 'href="http://testserver/topics"' in r.text and "noindex" in r.text
    assert (await site.client.get(f"/topics/{uuid.uuid4()}")).status_code == 404
    assert (await site.client.get("/insights/not-a-uuid")).status_code == 422


@pytest.mark.parametrize("reason", ["blocked", "removed"])
async def test_withdrawn_feed_answers_410_and_leaves_every_public_list(site: Site, reason: str) -> None:
    ev = site.by_text("Falling lithium prices")
    iid, cluster = ev.payload.insight.insight_id, ev.payload.cluster_id
    assert (await site.client.get("/sitemap.xml")).text.count(str(iid)) == 1
    withdrawn = new_event(
        FeedWithdrawn,
        FeedWithdrawnPayload(feed_id=ev.payload.episode.feed_id, reason=reason, withdrawn_at=utcnow()),
        key=str(ev.payload.episode.feed_id),
        correlation_id=ev.payload.episode.feed_id,
    )
    await on_feed_withdrawn(withdrawn, repo=site.deps.repo)
    await on_feed_withdrawn(withdrawn, repo=site.deps.repo)  # a repeat changes nothing
    r = await site.client.get(f"/insights/{iid}")
    assert r.status_code == 410 and "no longer available" in r.text and "<main" in r.text
    assert ("publisher" in r.text) == (reason == "blocked")
    assert ev.payload.insight.quote not in r.text
    other = site.by_text("Home batteries now pay").payload.insight.insight_id
    assert str(iid) not in (await site.client.get(f"/insights/{other}")).text
    assert str(iid) not in (await site.client.get(f"/topics/{cluster}")).text
    assert str(iid) not in (await site.client.get("/sitemap.xml")).text
    found = await site.client.get("/search", params={"q": "lithium prices"})
    assert found.status_code == 200 and str(iid) not in found.text and "No insights match" in found.text
    assert iid not in {c.insight_id for c in await site.deps.repo.candidates(utcnow() - timedelta(days=7))}


async def test_topic_page_groups_insights_by_day_with_shows_and_related_topics(site: Site, embedder: Embedder) -> None:
    ev = site.by_text("Home batteries now pay")
    # An older insight of the same topic on another day, and one linking to the grid topic.
    grid = site.by_text("Grid operators pay")
    older = clustered(
        show="Old Show",
        title="Back in the day",
        text="Battery prices fell by a third over two years",
        cluster=ev.payload.cluster_id,
        label=LABELS["batt"],
        published_at=utcnow() - timedelta(days=3),
        related=[r.model_copy(update={"insight_id": grid.payload.insight.insight_id}) for r in ev.payload.related[:1]],
    )
    await on_insight_clustered(older, repo=site.deps.repo, embedder=embedder)
    r = await site.client.get(f"/topics/{ev.payload.cluster_id}")
    assert r.status_code == 200
    page, seen = r.text, text_of(r.text)
    assert f'<h1 id="topic-label">{LABELS["batt"]}</h1>' in page
    days = re.findall(r'<h3 class="day"><time datetime="([0-9-]+)"', page)
    assert len(days) == 2 and days == sorted(days, reverse=True)
    assert page.index(ev.payload.insight.text) < page.index(older.payload.insight.text)  # newest first
    for show in ("Energy Hour", "Grid Talk", "Money Matters", "Old Show"):
        assert show in seen
    assert f'href="http://testserver/topics/{grid.payload.cluster_id}"' in page
    assert LABELS["grid"] in seen
    assert meta(page, "og:url") == f"http://testserver/topics/{ev.payload.cluster_id}"


async def test_trending_topics_rank_by_new_insights_and_shows(site: Site) -> None:
    r = await site.client.get("/topics")
    assert r.status_code == 200
    order = re.findall(r'data-topic="([0-9a-f-]+)"', r.text)
    by_label = {site.by_text(t).payload.cluster_id: t for t in ("Home", "Small modular", "Sourdough")}
    batt, nuke, bread = (str(c) for c in by_label)
    # Three insights from three shows beat two from two, which beat one.
    assert order.index(batt) < order.index(nuke) < order.index(bread)
    assert "3 new insights · 3 shows" in text_of(r.text)


async def test_search_shows_cards_and_clear_messages(site: Site) -> None:
    empty = await site.client.get("/search")
    assert empty.status_code == 200 and 'role="search"' in empty.text and site.searches == []
    for q, status, words in [
        ("", 400, "Type a few words"),
        ("   ", 400, "Type a few words"),
        ("?!", 400, "no letters or digits"),
        ("x" * 400, 400, "keep it under 300"),
    ]:
        r = await site.client.get("/search", params={"q": q})
        assert r.status_code == status and words in r.text, (q, r.text)
    assert site.searches == []  # bad queries never reach clustering
    r = await site.client.get("/search", params={"q": "nuclear reactors"})
    assert r.status_code == 200
    for start in ("Small modular nuclear", "New nuclear plants"):
        iid = site.by_text(start).payload.insight.insight_id
        assert f'href="http://testserver/insights/{iid}"' in r.text
    assert "2 insights for “nuclear reactors”" in text_of(r.text)
    none = await site.client.get("/search", params={"q": "zebras"})
    assert none.status_code == 200 and "No insights match “zebras”" in text_of(none.text)
    refused = await site.client.get("/search", params={"q": "refused by clustering"})
    assert refused.status_code == 400 and "could not run that search" in refused.text
    site.search_down = True
    down = await site.client.get("/search", params={"q": "nuclear"})
    assert down.status_code == 503 and "not available right now" in down.text


async def test_search_is_rate_limited_per_client(site: Site) -> None:
    for _ in range(5):  # the limit is 5 per window
        assert (await site.client.get("/search", params={"q": "battery"})).status_code == 200
    limited = await site.client.get("/search", params={"q": "battery"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "Too many searches" in limited.text
    assert len(site.searches) == 5
    # Bad queries are answered without counting, and the form itself is never limited.
    assert (await site.client.get("/search")).status_code == 200


async def test_robots_and_sitemap(site: Site) -> None:
    robots = (await site.client.get("/robots.txt")).text
    assert "Sitemap: http://testserver/sitemap.xml" in robots
    for private in ("/briefs/", "/archive", "/feedback", "/unsubscribe", "/confirm"):
        assert f"Disallow: {private}" in robots
    sm = await site.client.get("/sitemap.xml")
    assert sm.status_code == 200 and sm.headers["content-type"].startswith("application/xml")
    locs = re.findall(r"<loc>([^<]+)</loc>", sm.text)
    assert "http://testserver/topics" in locs
    assert {f"http://testserver/insights/{e.payload.insight.insight_id}" for e in site.events} <= set(locs)
    assert {f"http://testserver/topics/{e.payload.cluster_id}" for e in site.events} <= set(locs)
    assert not [u for u in locs if "?" in u]


async def test_feed_supplied_text_is_escaped_in_every_field(site: Site, embedder: Embedder) -> None:
    ev = clustered(
        show=f"Show {EVIL}",
        title=f"Episode {EVIL}",
        text=f"Insight {EVIL} batteries",
        quote=f"Quote {EVIL}",
        label=f"Topic {EVIL}",
        link='javascript:alert("link")',
        enclosure='javascript:alert("audio")',
    )
    ev = ev.model_copy(
        update={
            "payload": ev.payload.model_copy(
                update={"insight": ev.payload.insight.model_copy(update={"speaker": f"Speaker {EVIL}"})}
            )
        }
    )
    await on_insight_clustered(ev, repo=site.deps.repo, embedder=embedder)
    iid, cluster = ev.payload.insight.insight_id, ev.payload.cluster_id
    site.events.append(ev)
    pages = [
        (await site.client.get(f"/insights/{iid}")).text,
        (await site.client.get(f"/topics/{cluster}")).text,
        (await site.client.get("/topics")).text,
        (await site.client.get("/search", params={"q": "Insight"})).text,
        (await site.client.get("/search", params={"q": f"batteries {EVIL}"})).text,
    ]
    for page in pages:
        assert "<script>" not in page and "javascript:" not in page
    insight_page = pages[0]
    for field in ("Show", "Episode", "Insight", "Quote", "Topic", "Speaker"):
        assert f"{field} &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#34;&#39;" in insight_page, field
    assert meta(insight_page, "og:title") == f"Insight {EVIL} batteries"
    assert f"Topic {EVIL}" in text_of(pages[1]) and f"Topic {EVIL}" in text_of(pages[2])
    assert f"Insight {EVIL} batteries" in text_of(pages[3])
