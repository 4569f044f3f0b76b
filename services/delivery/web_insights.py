"""The public pages: each insight at its own address with its related insights and topic, topic pages and the
trending topics, semantic search, robots.txt and the sitemap. Anyone may read them, so they carry nothing
about subscribers; a reader's signed link (?t=, from their brief) only adds their feedback links."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from podbrief.errors import PermanentError, RetryableError
from podbrief_delivery import pages
from podbrief_delivery.deps import Deps, DepsDep
from podbrief_delivery.ratelimit import retry_after
from podbrief_delivery.tokens import TokenError
from podbrief_delivery.web import html

router = APIRouter(include_in_schema=False)
Token = Annotated[str | None, Query(max_length=2048)]
# Public pages may sit in shared caches for a few minutes; a signed (personal) view never does.
PUBLIC_CACHE = "public, max-age=300"
SITEMAP_LIMIT = 50_000
SEARCH_RESULTS = 20


def _reader(deps: Deps, t: str | None) -> uuid.UUID | None:
    if not t:
        return None
    try:
        return deps.signer.subscriber_of(t, "view")[0]
    except TokenError:
        return None


def _common(deps: Deps) -> dict[str, Any]:
    s = deps.settings
    return {"base": deps.links.base, "picks": s.picks_per_brief, "default_tz": s.default_timezone}


def notice(deps: Deps, title: str, *paragraphs: str, status: int) -> HTMLResponse:
    """A public page's 404 or 410, in the public pages' layout, with the way on."""
    return html(
        deps, "notice.html.j2", status, title=title, paragraphs=list(paragraphs), canonical=None, **_common(deps)
    )


@router.get("/insights/{insight_id}")
async def insight(insight_id: uuid.UUID, deps: DepsDep, t: Token = None) -> HTMLResponse:
    found = await pages.insight_page(
        insight_id, repo=deps.repo, related_min=deps.settings.related_min, related_max=deps.settings.related_max
    )
    if found is None:
        return notice(deps, "Insight not found", "There is no insight at this address.", status=404)
    if isinstance(found, pages.Gone):
        why = (
            "The podcast's publisher has asked services like podbrief to stop showing its episodes."
            if found.reason == "blocked"
            else "Its podcast is no longer in podbrief."
        )
        return notice(deps, "This insight is no longer available", why, status=410)
    reader = _reader(deps, t)
    feedback = (
        {k: deps.links.feedback(reader, insight_id, k) for k in ("up", "down", "more")} if reader is not None else None
    )
    return html(
        deps,
        "insight.html.j2",
        cache="no-store" if reader is not None else PUBLIC_CACHE,
        page=found,
        canonical=deps.links.insight_page(insight_id),
        topic_url=deps.links.topic_page(found.card.topic.cluster_id),
        feedback=feedback,
        **_common(deps),
    )


@router.get("/topics")
async def topics(deps: DepsDep) -> HTMLResponse:
    found = await pages.trending(repo=deps.repo)
    return html(
        deps,
        "topics.html.j2",
        cache=PUBLIC_CACHE,
        topics=found,
        days=pages.TRENDING_DAYS,
        canonical=f"{deps.links.base}/topics",
        **_common(deps),
    )


@router.get("/topics/{cluster_id}")
async def topic(cluster_id: uuid.UUID, deps: DepsDep) -> HTMLResponse:
    found = await pages.topic_page(cluster_id, repo=deps.repo)
    if found is None:
        return notice(deps, "Topic not found", "There is no topic at this address.", status=404)
    return html(
        deps,
        "topic.html.j2",
        cache=PUBLIC_CACHE,
        page=found,
        canonical=deps.links.topic_page(cluster_id),
        **_common(deps),
    )


@router.get("/search")
async def search(request: Request, deps: DepsDep, q: Annotated[str | None, Query()] = None) -> HTMLResponse:
    """Without `q`, the form. Every query that runs counts against the client's search limit."""

    def page(
        status: int = 200, *, query: str = "", error: str | None = None, results: list[pages.Card] | None = None
    ) -> HTMLResponse:
        return html(
            deps,
            "search.html.j2",
            status,
            query=query[: pages.MAX_QUERY_CHARS * 2],
            error=error,
            results=results,
            canonical=f"{deps.links.base}/search",
            **_common(deps),
        )

    if q is None:
        return page()
    try:
        query = pages.check_query(q)
    except pages.BadQuery as exc:
        return page(400, query=q, error=str(exc))
    wait = deps.limits.search(deps.limits.client(request))
    if wait is not None:
        deps.metrics.rate_limited.labels("search").inc()
        limited = page(429, query=query, error=f"Too many searches: please wait {retry_after(wait)} seconds.")
        limited.headers["Retry-After"] = retry_after(wait)
        return limited
    try:
        results = await pages.search(query, repo=deps.repo, search_api=deps.search, limit=SEARCH_RESULTS)
    except RetryableError:
        return page(503, query=query, error="Search is not available right now; please try again in a minute.")
    except PermanentError:
        return page(400, query=query, error="We could not run that search; try different words.")
    return page(query=query, results=results)


@router.get("/robots.txt")
async def robots(deps: DepsDep) -> PlainTextResponse:
    # Personal pages (briefs, archives, signed links) and one-click actions stay out of indexes.
    lines = [
        "User-agent: *",
        "Allow: /insights/",
        "Allow: /topics",
        "Disallow: /briefs/",
        "Disallow: /archive",
        "Disallow: /confirm",
        "Disallow: /unsubscribe",
        "Disallow: /feedback",
        "Disallow: /search",
        "Disallow: /o/",
        "Disallow: /v1/",
        f"Sitemap: {deps.links.base}/sitemap.xml",
    ]
    return PlainTextResponse("\n".join(lines) + "\n", headers={"Cache-Control": PUBLIC_CACHE})


@router.get("/sitemap.xml")
async def sitemap(deps: DepsDep) -> Response:
    entries = await deps.repo.sitemap_entries(SITEMAP_LIMIT - 1)
    urls: list[tuple[str, str | None]] = [(f"{deps.links.base}/topics", None)]
    seen: set[uuid.UUID] = set()
    for insight_id, cluster_id, updated in entries:
        urls.append((deps.links.insight_page(insight_id), updated.date().isoformat()))
        if cluster_id not in seen and len(urls) < SITEMAP_LIMIT:
            seen.add(cluster_id)
            urls.append((deps.links.topic_page(cluster_id), None))
    body = ['<?xml version="1.0" encoding="UTF-8"?>', '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">']
    for loc, lastmod in urls[:SITEMAP_LIMIT]:
        mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
        body.append(f"<url><loc>{escape(loc)}</loc>{mod}</url>")
    body.append("</urlset>")
    return Response("\n".join(body) + "\n", media_type="application/xml", headers={"Cache-Control": PUBLIC_CACHE})
