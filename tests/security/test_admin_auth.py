"""Admin-key coverage: every route of every service is classified (admin, subscriber or public), admin routes
answer 401 without the right X-API-Key and 403 outright when no key is configured (the same in every service,
through podbrief.http.require_admin), document both, and the key is compared in constant time."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from podbrief.http import check_api_key
from starlette.routing import Mount, Route

pytestmark = pytest.mark.unit

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
KEY = "security-suite-admin-key-0123456789"
WRONG_KEYS = ("", "wrong", KEY[:-1], KEY + "x", KEY.upper(), " " + KEY)
PATH_VALUES = {"day": "2026-01-01", "token": "abc"}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """What the app answers, including routes left out of the OpenAPI document and mounted apps."""
    out: set[tuple[str, str]] = set()
    # FastAPI 0.16x keeps included routers as branches; iter_route_contexts flattens them with full paths.
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if isinstance(route, Mount):
            out.add(("GET", str(rc.path)))
        elif isinstance(route, Route):
            out |= {(m, str(rc.path)) for m in (getattr(route, "methods", None) or set()) if m != "HEAD"}
        else:
            raise AssertionError(f"unknown kind of route {route!r}")
    return out


def openapi_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}


def concrete(path: str) -> str:
    out = path
    while "{" in out:
        name = out[out.index("{") + 1 : out.index("}")]
        out = out.replace("{" + name + "}", PATH_VALUES.get(name, str(uuid.uuid4())), 1)
    return out


def call(client: TestClient, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PATCH", "PUT") else {}
    return client.request(method, concrete(path), headers=headers or {}, **body)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_classified(service: str, make_app: Callable[..., FastAPI], routes: Any) -> None:
    app = make_app(service)
    served = served_routes(app)
    documented = openapi_routes(app)
    assert documented <= served
    admin = routes.admin[service]
    subscriber = routes.subscriber.get(service, frozenset())
    public = routes.public[service]
    assert not (admin & public) and not (admin & subscriber) and not (subscriber & public)
    unclassified = served - admin - subscriber - public
    assert not unclassified, f"{service}: new routes must be classified in tests/security/conftest.py"
    assert (admin | subscriber | public) == served, f"{service}: the table lists routes the app no longer has"


@pytest.mark.parametrize("service", ["ingest", "clustering", "delivery"])
def test_admin_routes_need_the_key(service: str, started: Callable[..., TestClient], routes: Any) -> None:
    client = started(service)
    assert routes.admin[service]
    for method, path in sorted(routes.admin[service]):
        r = call(client, method, path)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401 and "X-API-Key" in r.json()["detail"]
        for wrong in WRONG_KEYS:
            r = call(client, method, path, {"X-API-Key": wrong})
            assert r.status_code == 401, (method, path, wrong, r.status_code)
        # The admin key is not a bearer credential anywhere.
        r = call(client, method, path, {"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 401, (method, path, r.status_code)
        r = call(client, method, path, {"X-API-Key": KEY})
        assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.status_code, r.text)


@pytest.mark.parametrize("service", ["ingest", "clustering", "delivery"])
def test_admin_routes_are_closed_without_a_configured_key(
    service: str, started: Callable[..., TestClient], routes: Any
) -> None:
    client = started(service, admin_key=None)
    for method, path in sorted(routes.admin[service]):
        for headers in ({}, {"X-API-Key": KEY}, {"X-API-Key": ""}, {"X-API-Key": "None"}):
            r = call(client, method, path, headers)
            assert r.status_code == 403, (method, path, headers, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
            # It says how to open them, naming the service's own variable.
            assert f"{service.upper()}_HTTP__ADMIN_API_KEY" in r.json()["detail"]


@pytest.mark.parametrize("service", ["ingest", "clustering", "delivery"])
def test_admin_routes_document_both_refusals(service: str, make_app: Callable[..., FastAPI], routes: Any) -> None:
    paths = make_app(service).openapi()["paths"]
    for method, path in sorted(routes.admin[service]):
        if path.startswith("/metrics"):
            continue
        responses = paths[path][method.lower()]["responses"]
        assert {"401", "403"} <= set(responses), (method, path, sorted(responses))


@pytest.mark.parametrize("service", SERVICES)
def test_public_routes_answer_without_credentials(
    service: str, started: Callable[..., TestClient], routes: Any
) -> None:
    client = started(service)
    for method, path in sorted(routes.public[service]):
        if method != "GET":
            continue
        r = call(client, method, path)
        assert r.status_code not in (401, 403) and r.status_code < 500, (method, path, r.status_code)


def test_the_key_is_compared_in_constant_time(
    started: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for service, method, path in (
        ("ingest", "GET", "/v1/feeds"),
        ("clustering", "POST", "/v1/admin/recluster"),
        ("delivery", "POST", "/v1/admin/bounces"),
    ):
        before = len(seen)
        client = started(service)
        assert call(client, method, path, {"X-API-Key": "nope"}).status_code == 401
        assert call(client, method, path, {"X-API-Key": KEY}).status_code not in (401, 403)
        assert len(seen) - before == 2, service
        assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in seen)
    assert check_api_key(KEY, KEY) and not check_api_key(KEY, None) and not check_api_key(None, KEY)
    assert not check_api_key("", "") and not check_api_key("é", "e")
