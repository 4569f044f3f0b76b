"""Request bodies: over the size limit is a 413 (declared or streamed), malformed is a 4xx problem, and
nothing a client sends as a body makes a service answer 500."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

KEY = {"X-API-Key": "security-suite-admin-key-0123456789"}
LIMIT = 4096
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")

# Per service: routes that read a JSON (or raw) body, with the headers that get the request that far.
BODY_ROUTES: dict[str, list[tuple[str, str]]] = {
    "ingest": [("POST", "/v1/feeds"), ("POST", "/v1/opml")],
    "transcription": [],
    "extraction": [],
    "clustering": [],
    "delivery": [
        ("POST", "/v1/subscribers"),
        ("POST", "/v1/subscribers/confirm"),
        ("POST", "/v1/admin/deliveries/run"),
        ("POST", "/v1/admin/bounces"),
    ],
}
# Any route of each service: the limit applies before routing.
ANY_ROUTE: dict[str, tuple[str, str]] = {
    "ingest": ("POST", "/v1/feeds"),
    "transcription": ("GET", f"/v1/episodes/{uuid.uuid4()}/transcript"),
    "extraction": ("GET", f"/v1/episodes/{uuid.uuid4()}"),
    "clustering": ("POST", "/v1/admin/recluster"),
    "delivery": ("POST", "/v1/subscribers"),
}

MALFORMED: list[tuple[bytes, str]] = [
    (b"{not json", "application/json"),
    (b'{"email": "a@example.org",', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'"just a string"', "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b"null", "application/json"),
    (b'{"email": {"$ne": null}, "url": ["x"], "token": 5, "date": "yesterday"}', "application/json"),
    (b"[" * 3000 + b"]" * 3000, "application/json"),
    (b'{"email": "a@example.org"}', "text/plain"),
    (b"email=a%40example.org", "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data"),
]


def chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(1024, total - sent)
        sent += n
        yield b"a" * n


def assert_problem(r: Any, *statuses: int) -> None:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == r.status_code


@pytest.mark.parametrize("service", SERVICES)
def test_declared_oversized_body_is_413(service: str, started: Callable[..., TestClient]) -> None:
    client = started(service, max_body=LIMIT)
    method, path = ANY_ROUTE[service]
    r = client.request(method, path, content=b"x" * (LIMIT + 1), headers={**KEY, "content-type": "application/json"})
    assert_problem(r, 413)
    assert r.json()["title"] == "Content Too Large"
    # Exactly at the limit is allowed through (and then judged on its content).
    r = client.request(method, path, content=b"x" * LIMIT, headers={**KEY, "content-type": "application/json"})
    assert r.status_code != 413 and r.status_code < 500


@pytest.mark.parametrize("service", ["ingest", "delivery"])
def test_streamed_oversized_body_is_413(service: str, started: Callable[..., TestClient]) -> None:
    """No Content-Length (chunked): the limit is enforced while the body is read."""
    client = started(service, max_body=LIMIT)
    for method, path in BODY_ROUTES[service]:
        r = client.request(method, path, content=chunks(LIMIT * 3), headers={**KEY, "content-type": "application/json"})
        assert_problem(r, 413)
    if service == "delivery":
        r = client.post(
            "/signup", content=chunks(LIMIT * 3), headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert r.status_code == 413


@pytest.mark.parametrize("service", SERVICES)
def test_malformed_bodies_are_client_errors(service: str, started: Callable[..., TestClient]) -> None:
    client = started(service, max_body=1_000_000)
    routes = BODY_ROUTES[service] or [ANY_ROUTE[service]]
    for method, path in routes:
        for body, ctype in MALFORMED:
            r = client.request(method, path, content=body, headers={**KEY, "content-type": ctype})
            assert r.status_code < 500, (method, path, body[:40], ctype, r.status_code, r.text[:300])
            if BODY_ROUTES[service] and path != "/v1/opml" and r.status_code >= 400:
                assert_problem(r, 400, 413, 415, 422)
            if BODY_ROUTES[service] and path not in ("/v1/opml", "/v1/admin/deliveries/run"):
                # Nothing malformed is accepted as a valid request.
                assert r.status_code >= 400, (method, path, body[:40], ctype)


def test_malformed_opml_is_422(started: Callable[..., TestClient]) -> None:
    client = started("ingest")
    for body in (b"<opml><body><outline", b"\x00\x01", b"<!DOCTYPE x [<!ENTITY a 'b'>]><opml>&a;</opml>", b""):
        r = client.post("/v1/opml", content=body, headers=KEY)
        assert_problem(r, 422)


def test_malformed_forms_never_500(started: Callable[..., TestClient]) -> None:
    client = started("delivery")
    for path in ("/signup", "/confirm", "/unsubscribe"):
        for body, ctype in MALFORMED:
            r = client.post(path, content=body, headers={"content-type": ctype})
            assert r.status_code < 500, (path, body[:40], ctype, r.status_code, r.text[:300])
    r = client.post("/signup", data={"email": "x" * 5000, "interests": "y" * 5000, "delivery_hour": "99"})
    assert r.status_code == 422


def test_valid_json_at_the_edges_of_the_models(started: Callable[..., TestClient]) -> None:
    client = started("delivery")
    edge = [
        {"email": "a@example.org", "interests": "x" * 2001},
        {"email": "a@example.org", "topics": ["t"] * 21},
        {"email": "a@example.org", "delivery_hour": 24},
        {"email": "a@example.org", "quiet_day_policy": "loud"},
        {"email": "a" * 400 + "@example.org"},
        {"email": "a@example.org\r\nBcc: victim@example.org"},
        {"email": "<script>@example.org"},
        {"email": "a@example.org", "timezone": "../../etc/passwd"},
    ]
    for body in edge:
        r = client.post("/v1/subscribers", content=json.dumps(body), headers={"content-type": "application/json"})
        assert_problem(r, 422)
    assert client.app.state.mailer.messages == []
