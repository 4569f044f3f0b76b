"""The clustering service's search, through its HTTP API (GET /v1/search): delivery never reads clustering's
store or imports its code."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
from podbrief.errors import PermanentError, UnavailableError
from pydantic import BaseModel, ConfigDict, ValidationError

# What the public /search page needs: an id to look up in delivery's own copy, and the score.
Search = Callable[[str, int], Awaitable[list["SearchHit"]]]


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    insight_id: uuid.UUID
    score: float


class _SearchResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    results: list[SearchHit]


class ClusteringClient:
    def __init__(self, base_url: str, *, timeout_s: float, client: httpx.AsyncClient | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.http = client or httpx.AsyncClient(timeout=timeout_s)

    async def search(self, query: str, limit: int) -> list[SearchHit]:
        """The nearest insights to `query`, best first. UnavailableError when clustering cannot answer now;
        PermanentError when it refuses the query or answers something that is not its search response."""
        try:
            r = await self.http.get(f"{self.base}/v1/search", params={"q": query, "limit": limit})
        except httpx.HTTPError as exc:
            raise UnavailableError(f"clustering search: {type(exc).__name__}", reason="unavailable") from exc
        if r.status_code >= 500 or r.status_code == 429:
            raise UnavailableError(f"clustering search answered {r.status_code}", reason="unavailable")
        if r.status_code != 200:
            raise PermanentError(f"clustering search refused the query ({r.status_code})", reason="permanent")
        try:
            return _SearchResponse.model_validate_json(r.content).results
        except ValidationError as exc:
            raise PermanentError("clustering search answered an unexpected body", reason="permanent") from exc

    async def aclose(self) -> None:
        await self.http.aclose()
