"""#21 item 10: every route of transcription, extraction, clustering and delivery (ingest has its own in
test_feed_input) answers a problem document, never a plain-text 500, for out-of-range numbers in its query
(10^20, -10^20, 1e999) and for bodies that do not decode (invalid UTF-8, an unknown charset, a UTF-16 body
declared as JSON)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

KEY = {"X-API-Key": "security-suite-admin-key-0123456789"}
SERVICES = ("transcription", "extraction", "clustering", "delivery")
HUGE = ("100000000000000000000", "-100000000000000000000", "1e999", "NaN")
BAD_BODIES = (
    (b'{"email": "\xff\xfe@example.org"}', "application/json"),
    (b'{"date": "2026-01-02"}', "application/json; charset=x-unknown-9"),
    ('{"force": true}'.encode("utf-16"), "application/json"),
    (b"\xff\xfe\x00<opml/>", "text/xml; charset=klingon"),
    (b"t=%FF%FE&List-Unsubscribe=One-Click", "application/x-www-form-urlencoded"),
    (b"--x\r\nContent-Disposition: form-data; name=t\r\n\r\n\xff\xfe\r\n--x--\r\n", "multipart/form-data; boundary=x"),
)


def concrete(path: str) -> str:
    return re.sub(r"{[^}]+}", "00000000-0000-4000-8000-000000000000", path)


def is_integer(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(is_integer(s) for s in schema.get("anyOf", []))


def operations(client: TestClient) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path with ids filled in, operation) from the service's OpenAPI document."""
    doc = client.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), concrete(path), op


def int_queries(op: dict[str, Any]) -> list[str]:
    return [p["name"] for p in op.get("parameters", []) if p["in"] == "query" and is_integer(p.get("schema", {}))]


def assert_problem(r: Any, what: str) -> None:
    assert r.status_code < 500, (what, r.status_code, r.text[:300])
    if r.status_code >= 400 and not r.headers.get("content-type", "").startswith("text/html"):
        assert r.headers["content-type"] == "application/problem+json", (what, r.headers, r.text[:300])


@pytest.mark.parametrize("service", SERVICES)
def test_numbers_out_of_range_answer_problems(started: Callable[..., TestClient], service: str) -> None:
    client = started(service)
    checked = 0
    for method, path, op in operations(client):
        for name in int_queries(op):
            for value in HUGE:
                r = client.request(method, path, params={name: value}, headers=KEY)
                assert_problem(r, f"{method} {path}?{name}={value}")
                checked += 1
    if service in ("clustering",):
        assert checked, "clustering has numeric query parameters"


@pytest.mark.parametrize("service", SERVICES)
def test_bodies_that_do_not_decode_answer_problems(started: Callable[..., TestClient], service: str) -> None:
    client = started(service)
    for method, path, op in operations(client):
        if method not in ("POST", "PUT", "PATCH") or "requestBody" not in op:
            continue
        for body, ctype in BAD_BODIES:
            r = client.request(method, path, content=body, headers={**KEY, "Content-Type": ctype})
            assert_problem(r, f"{method} {path} {ctype}")
    # The web pages' forms (delivery) answer their own HTML error pages, never a 500.
    if service == "delivery":
        for path in ("/signup", "/confirm", "/unsubscribe"):
            for body, ctype in BAD_BODIES:
                r = client.post(path, content=body, headers={"Content-Type": ctype})
                assert r.status_code < 500, (path, ctype, r.status_code, r.text[:300])
