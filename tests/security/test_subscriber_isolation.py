"""Delivery's subscriber endpoints: A's credentials never read or change B's data, every token works for its
one purpose only, and tampered or expired tokens are refused with an RFC 9457 problem."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from podbrief_delivery.tokens import Signer, TokenError, TokenExpired

pytestmark = pytest.mark.unit

SECRET = "security-suite-signing-secret-0123456789"
DAY = date(2026, 1, 2)
PURPOSES = ("confirm", "unsubscribe", "feedback", "profile", "view", "open")


@dataclass
class World:
    client: TestClient
    a: Any
    b: Any
    signer: Signer
    brief_a: uuid.UUID
    brief_b: uuid.UUID

    def token(self, purpose: str, sub: uuid.UUID, **extra: Any) -> str:
        return self.signer.for_subscriber(purpose, sub, 3600, **extra)

    def profile_of(self, member: Any) -> dict[str, Any]:
        r = self.client.get(f"/v1/subscribers/{member.id}", headers=bearer(member.api_key))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def world(started: Callable[..., TestClient], kit: Any) -> Iterator[World]:
    client = started("delivery")
    a = kit.join(client, "alice@example.org", "heat pumps")
    b = kit.join(client, "bob@example.org", "football tactics")
    deps = client.app.state.deps
    for member in (a, b):
        body = kit.brief_body(member.id, DAY, text=f"insight for {member.email}")
        client.portal.call(deps.repo.save_brief, uuid.UUID(body["brief_id"]), member.id, DAY, body)
    ids = [uuid.UUID(kit.brief_body(m.id, DAY)["brief_id"]) for m in (a, b)]
    yield World(client, a, b, Signer(SECRET), ids[0], ids[1])


def a_credentials(w: World) -> list[tuple[dict[str, str], str]]:
    """Every way A can authenticate: API key, profile token in the header, profile token in the query."""
    return [
        (bearer(w.a.api_key), ""),
        ({"X-Subscriber-Token": w.a.profile_token}, ""),
        ({}, "?t=" + quote(w.a.profile_token, safe="")),
    ]


SUBSCRIBER_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PATCH", "", {"interests": "stolen", "status": "paused", "delivery_hour": 3}),
    ("POST", "/api-key", None),
    ("GET", "/export", None),
    ("GET", "/briefs", None),
    ("GET", "/briefs/latest", None),
    ("GET", f"/briefs/{DAY.isoformat()}", None),
    ("DELETE", "", None),
]


def test_a_cannot_read_or_change_b(world: World) -> None:
    w = world
    before = w.profile_of(w.b)
    for headers, query in a_credentials(w):
        for method, suffix, body in SUBSCRIBER_CALLS:
            r = w.client.request(method, f"/v1/subscribers/{w.b.id}{suffix}{query}", headers=headers, json=body)
            # Not 403: the answer does not even confirm that B exists.
            assert r.status_code == 404, (method, suffix, headers, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
            assert "bob@example.org" not in r.text and "football" not in r.text
    # B is untouched: same profile, same key, same brief.
    assert w.profile_of(w.b) == before
    assert w.client.get(f"/v1/subscribers/{w.b.id}/briefs/latest", headers=bearer(w.b.api_key)).status_code == 200
    # A's own calls work, and only ever show A.
    for method, suffix, body in SUBSCRIBER_CALLS[:-1]:
        if method == "POST":
            continue
        r = w.client.request(method, f"/v1/subscribers/{w.a.id}{suffix}", headers=bearer(w.a.api_key), json=body)
        assert r.status_code == 200, (method, suffix, r.text)
        assert "bob@example.org" not in r.text and "football" not in r.text
    export = w.client.get(f"/v1/subscribers/{w.a.id}/export", headers=bearer(w.a.api_key)).json()
    assert export["subscriber"]["email"] == "alice@example.org"
    assert {b["subscriber_id"] for b in export["briefs"]} == {str(w.a.id)}


def test_deleting_and_rotating_are_per_subscriber(world: World) -> None:
    w = world
    r = w.client.post(f"/v1/subscribers/{w.a.id}/api-key", headers=bearer(w.a.api_key))
    assert r.status_code == 200
    new_key = r.json()["api_key"]
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers=bearer(w.a.api_key)).status_code == 404
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers=bearer(new_key)).status_code == 200
    assert w.client.delete(f"/v1/subscribers/{w.a.id}", headers=bearer(new_key)).status_code == 204
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers=bearer(new_key)).status_code == 404
    assert w.profile_of(w.b)["email"] == "bob@example.org"


def test_web_pages_serve_only_the_token_holder(world: World) -> None:
    w = world
    view_a = quote(w.token("view", w.a.id), safe="")
    assert w.client.get(f"/briefs/{w.brief_a}?t={view_a}").status_code == 200
    page = w.client.get(f"/briefs/{w.brief_b}?t={view_a}")
    assert page.status_code == 404 and "bob@example.org" not in page.text
    archive = w.client.get(f"/archive?t={view_a}")
    assert archive.status_code == 200 and "alice@example.org" in archive.text
    assert "bob@example.org" not in archive.text and str(w.brief_b) not in archive.text
    # Feedback and unsubscribe with A's tokens act on A alone.
    insight = uuid.uuid4()
    fb = quote(w.token("feedback", w.a.id, i=str(insight), k="up"), safe="")
    assert w.client.get(f"/feedback?t={fb}").status_code == 200
    unsub = quote(w.token("unsubscribe", w.a.id), safe="")
    assert w.client.post(f"/unsubscribe?t={unsub}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    b_export = w.client.get(f"/v1/subscribers/{w.b.id}/export", headers=bearer(w.b.api_key)).json()
    assert b_export["subscriber"]["status"] == "active" and b_export["feedback"] == []
    # A is gone for the API too (unsubscribed keys open nothing).
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers=bearer(w.a.api_key)).status_code == 404


def test_tokens_work_for_their_own_purpose_only(world: World) -> None:
    w = world
    insight = str(uuid.uuid4())
    for purpose in PURPOSES:
        tok = w.token(purpose, w.a.id, i=insight, k="down")
        q = quote(tok, safe="")
        if purpose != "profile":
            r = w.client.get(f"/v1/subscribers/{w.a.id}", headers={"X-Subscriber-Token": tok})
            assert r.status_code == 401, purpose
            assert r.headers["content-type"] == "application/problem+json"
        if purpose != "confirm":
            r = w.client.post("/v1/subscribers/confirm", json={"token": tok})
            assert r.status_code == 400, purpose
            assert r.json()["title"] == "Invalid confirmation" and r.json()["detail"] == "bad signature"
            assert w.client.get(f"/confirm?t={q}").status_code == 400
            assert w.client.post("/confirm", data={"t": tok}).status_code == 400
        if purpose != "unsubscribe":
            assert w.client.get(f"/unsubscribe?t={q}").status_code == 400, purpose
            assert w.client.post(f"/unsubscribe?t={q}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
        if purpose != "feedback":
            assert w.client.get(f"/feedback?t={q}").status_code == 400, purpose
        if purpose != "view":
            assert w.client.get(f"/briefs/{w.brief_a}?t={q}").status_code == 404, purpose
            assert w.client.get(f"/archive?t={q}").status_code == 404, purpose
    # Nothing of the above changed A: still active, no feedback recorded.
    export = w.client.get(f"/v1/subscribers/{w.a.id}/export", headers=bearer(w.a.api_key)).json()
    assert export["subscriber"]["status"] == "active" and export["feedback"] == []


def tampered(token: str) -> list[str]:
    raw, mac = token.split(".")
    flip = {"A": "B", "B": "A"}
    return [
        raw[:-2] + flip.get(raw[-2], "A") + raw[-1] + "." + mac,
        raw + "." + mac[:-2] + flip.get(mac[-2], "A") + mac[-1],
        raw + "." + mac + "x",
        raw,
        "." + mac,
        raw + "..." + mac,
        "a" * 3000,
        "",
        "not a token",
    ]


def test_tampered_and_forged_tokens_are_refused(world: World) -> None:
    w = world
    good = w.a.profile_token
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers={"X-Subscriber-Token": good}).status_code == 200
    for bad in tampered(good):
        if not bad:
            continue
        r = w.client.get(f"/v1/subscribers/{w.a.id}", headers={"X-Subscriber-Token": bad[:2048]})
        assert r.status_code == 401, bad
        problem = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert problem["status"] == 401 and problem["title"] == "Unauthorized" and problem["type"] == "about:blank"
    # B's payload under A's MAC: the signature no longer matches.
    raw_b = w.b.profile_token.split(".")[0]
    spliced = raw_b + "." + good.split(".")[1]
    assert w.client.get(f"/v1/subscribers/{w.b.id}", headers={"X-Subscriber-Token": spliced}).status_code == 401
    # A token signed with another deployment's secret.
    foreign = Signer("another-secret-0123456789abcdef").for_subscriber("profile", w.a.id, 3600)
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers={"X-Subscriber-Token": foreign}).status_code == 401
    # Confirmation: each bad token is a 400 problem, never a 500.
    for bad in tampered(w.token("confirm", w.a.id)):
        r = w.client.post("/v1/subscribers/confirm", json={"token": bad[:2048]})
        assert r.status_code in (400, 422), bad
        assert r.headers["content-type"] == "application/problem+json"
    # Neither an unknown auth scheme nor a key that was never issued opens anything.
    assert w.client.get(f"/v1/subscribers/{w.a.id}", headers={"Authorization": "Basic abc"}).status_code == 401
    r = w.client.get(f"/v1/subscribers/{w.a.id}", headers=bearer("pbk_" + "x" * 43))
    assert r.status_code == 404


def test_expired_tokens_are_refused() -> None:
    signer = Signer(SECRET)
    sub = uuid.uuid4()
    now = 1_800_000_000.0
    tok = signer.sign("profile", {"s": str(sub)}, 60, now=now)
    assert signer.verify(tok, "profile", now=now + 59)["s"] == str(sub)
    assert signer.verify(tok, "profile", now=now + 60)["s"] == str(sub)
    with pytest.raises(TokenExpired):
        signer.verify(tok, "profile", now=now + 61)
    with pytest.raises(TokenError):
        signer.verify(tok, "view", now=now)


def test_expired_tokens_get_a_problem(world: World) -> None:
    w = world
    past = time.time() - 7200
    profile = w.signer.sign("profile", {"s": str(w.a.id)}, 3600, now=past)
    r = w.client.get(f"/v1/subscribers/{w.a.id}", headers={"X-Subscriber-Token": profile})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"] == "invalid or expired token"
    confirm = w.signer.sign("confirm", {"s": str(w.a.id)}, 3600, now=past)
    r = w.client.post("/v1/subscribers/confirm", json={"token": confirm})
    assert r.status_code == 400 and r.json()["detail"] == "token expired"
    for path, purpose, status in (("/unsubscribe", "unsubscribe", 400), ("/archive", "view", 404)):
        tok = quote(w.signer.sign(purpose, {"s": str(w.a.id)}, 3600, now=past), safe="")
        assert w.client.get(f"{path}?t={tok}").status_code == status
    fb = quote(w.signer.sign("feedback", {"s": str(w.a.id), "i": str(uuid.uuid4()), "k": "up"}, 3600, now=past))
    assert w.client.get(f"/feedback?t={fb}").status_code == 400
