"""Fetching from feed hosts: podbrief.netfetch's guarded client (aiohttp under netguard's SSRF policy), with
politeness limits per host and overall."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from podbrief.netfetch import FetchResult, GuardedClient

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "application/rdf+xml;q=0.8, */*;q=0.1"
)


class HostLimiter:
    """Politeness: at most `per_host` requests to one host, and `total` overall, at any moment."""

    def __init__(self, total: int, per_host: int) -> None:
        self.total = asyncio.Semaphore(total)
        self.per_host = per_host
        self.hosts: dict[str, asyncio.Semaphore] = {}
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def _sem(self, host: str) -> asyncio.Semaphore:
        sem = self.hosts.get(host)
        if sem is None:
            sem = self.hosts[host] = asyncio.Semaphore(self.per_host)
        return sem

    async def run(self, url: str, fn: Any) -> Any:
        host = (urlsplit(url).hostname or "").lower()
        async with self.total, self._sem(host):
            self.active[host] = self.active.get(host, 0) + 1
            self.peak[host] = max(self.peak.get(host, 0), self.active[host])
            try:
                return await fn()
            finally:
                self.active[host] -= 1


class Fetcher:
    """Guarded fetches with per-host limits. Errors arrive as podbrief.errors (see GuardedClient.get)."""

    def __init__(self, client: GuardedClient, limiter: HostLimiter, *, deadline_s: float) -> None:
        self.client = client
        self.limiter = limiter
        self.deadline_s = deadline_s

    async def get(
        self, url: str, *, max_bytes: int, accept: str = "*/*", headers: Mapping[str, str] | None = None
    ) -> FetchResult:
        async def go() -> FetchResult:
            return await self.client.get(
                url, max_bytes=max_bytes, accept=accept, headers=headers, deadline_s=self.deadline_s
            )

        result: FetchResult = await self.limiter.run(url, go)
        return result
