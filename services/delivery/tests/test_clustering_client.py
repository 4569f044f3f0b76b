"""Delivery's client of clustering's GET /v1/search: what it sends, what it reads, and how each failure is
classified (the search page answers 503 for a temporary one, 400 for a refused query)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from podbrief.errors import PermanentError, UnavailableError
from podbrief_delivery.adapters.clustering import ClusteringClient

pytestmark = pytest.mark.unit


def client(handler: httpx.MockTransport) -> ClusteringClient:
    return ClusteringClient("http://clustering:8004/", timeout_s=1, client=httpx.AsyncClient(transport=handler))


async def test_reads_the_hits_of_clusterings_response() -> None:
    ids = [uuid.uuid4(), uuid.uuid4()]
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        results = [{"insight_id": str(i), "score": 0.9 - n / 10, "text": "t", "show": "s"} for n, i in enumerate(ids)]
        return httpx.Response(200, json={"query": "q", "took_ms": 1.0, "results": results})

    hits = await client(httpx.MockTransport(answer)).search("home batteries & solar", 7)
    assert [h.insight_id for h in hits] == ids and hits[0].score == pytest.approx(0.9)
    [req] = seen
    assert req.url.path == "/v1/search"
    assert req.url.params["q"] == "home batteries & solar" and req.url.params["limit"] == "7"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(503, json={"title": "Service Unavailable"}), UnavailableError),
        (httpx.Response(500, text="boom"), UnavailableError),
        (httpx.Response(429, json={}), UnavailableError),
        (httpx.Response(422, json={"title": "Unprocessable"}), PermanentError),
        (httpx.Response(200, text="<html>not json</html>"), PermanentError),
        (httpx.Response(200, json={"results": [{"insight_id": "not-a-uuid", "score": 1}]}), PermanentError),
    ],
)
async def test_failures_are_classified(answer: httpx.Response, error: type[Exception]) -> None:
    with pytest.raises(error):
        await client(httpx.MockTransport(lambda _r: answer)).search("q", 5)


async def test_an_unreachable_service_is_temporary() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UnavailableError) as err:
        await client(httpx.MockTransport(refuse)).search("q", 5)
    assert err.value.reason == "unavailable"
