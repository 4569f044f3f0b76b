"""#21 item 1: a confirmation token works once and never re-activates an address that unsubscribed or was
deleted; profile tokens are revoked by unsubscribing, rotating the API key and deleting (the per-subscriber
token version they carry)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit


def as_profile(token: str) -> dict[str, str]:
    return {"X-Subscriber-Token": token}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def status_of(client: TestClient, email: str) -> str | None:
    sub = client.portal.call(client.app.state.deps.repo.subscriber_by_email, email)  # type: ignore[attr-defined]
    return None if sub is None else str(sub.status)


def test_a_replayed_confirmation_after_unsubscribing_is_refused(started: Callable[..., TestClient], kit: Any) -> None:
    client = started("delivery")
    email = "replay@example.org"
    member = kit.join(client, email)
    token = kit.confirmation_token(client.app.state.mailer, email)

    # Replaying the token while active issues nothing (no second key, no second profile token).
    again = client.post("/v1/subscribers/confirm", json={"token": token})
    assert again.status_code == 400 and again.headers["content-type"] == "application/problem+json"
    assert "already used" in again.json()["detail"] and "api_key" not in again.json()
    assert "profile_token" not in again.json()

    r = client.delete(f"/v1/subscribers/{member.id}", headers=as_profile(member.profile_token))
    assert r.status_code == 204
    # Deleted: the replay answers a problem and creates nothing.
    r = client.post("/v1/subscribers/confirm", json={"token": token})
    assert r.status_code == 400 and status_of(client, email) is None

    # Sign up again, confirm, unsubscribe through the API's one-click link: the replays of both confirmation
    # tokens (the first and the second) answer 400 and leave the address unsubscribed.
    member = kit.join(client, email)
    second = kit.confirmation_token(client.app.state.mailer, email)
    unsub = client.app.state.deps.links.unsubscribe(member.id)  # type: ignore[attr-defined]
    r = client.post(unsub.split("testserver", 1)[-1], data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and status_of(client, email) == "unsubscribed"
    for tok in (token, second):
        r = client.post("/v1/subscribers/confirm", json={"token": tok})
        assert r.status_code == 400, r.text
        assert client.post("/confirm", data={"t": tok}).status_code == 400
        page = client.get(f"/confirm?t={quote(tok, safe='')}")
        assert page.status_code == 400 and "already used" in page.text and "<form" not in page.text
        assert status_of(client, email) == "unsubscribed"
    # The profile token of the unsubscribed address opens nothing, and cannot mint a key.
    assert client.get(f"/v1/subscribers/{member.id}", headers=as_profile(member.profile_token)).status_code == 401
    r = client.post(f"/v1/subscribers/{member.id}/api-key", headers=as_profile(member.profile_token))
    assert r.status_code == 401

    # A fresh sign-up sends a new link, which works once; the old ones still do not.
    r = client.post("/v1/subscribers", json={"email": email, "interests": "again"})
    assert r.status_code == 202
    third = kit.confirmation_token(client.app.state.mailer, email)
    assert third not in (token, second)
    assert client.post("/v1/subscribers/confirm", json={"token": second}).status_code == 400
    assert client.post("/v1/subscribers/confirm", json={"token": third}).status_code == 200
    assert client.post("/v1/subscribers/confirm", json={"token": third}).status_code == 400


def test_profile_tokens_are_revoked_by_key_rotation(started: Callable[..., TestClient], kit: Any) -> None:
    client = started("delivery")
    member = kit.join(client, "rotate@example.org")
    profile = as_profile(member.profile_token)
    assert client.get(f"/v1/subscribers/{member.id}", headers=profile).status_code == 200
    r = client.post(f"/v1/subscribers/{member.id}/api-key", headers=bearer(member.api_key))
    assert r.status_code == 200
    new_key = r.json()["api_key"]
    for headers in (profile, bearer(member.api_key)):
        r = client.get(f"/v1/subscribers/{member.id}", headers=headers)
        assert r.status_code in (401, 404) and r.headers["content-type"] == "application/problem+json"
    # ?t= is the same token by another door.
    assert client.get(f"/v1/subscribers/{member.id}?t={quote(member.profile_token, safe='')}").status_code == 401
    # A stolen profile token cannot mint a key once the subscriber rotated.
    assert client.post(f"/v1/subscribers/{member.id}/api-key", headers=profile).status_code == 401
    assert client.get(f"/v1/subscribers/{member.id}", headers=bearer(new_key)).status_code == 200


def test_tokens_from_before_versions_are_refused(started: Callable[..., TestClient], kit: Any) -> None:
    """Confirmation and profile tokens signed without a version (issued before the fix) no longer work."""
    client = started("delivery")
    member = kit.join(client, "legacy@example.org")
    signer = client.app.state.deps.signer  # type: ignore[attr-defined]
    legacy = signer.for_subscriber("profile", member.id, 3600)
    assert client.get(f"/v1/subscribers/{member.id}", headers=as_profile(legacy)).status_code == 401
    r = client.post("/v1/subscribers", json={"email": "legacy2@example.org", "interests": "x"})
    assert r.status_code == 202
    sub = client.portal.call(client.app.state.deps.repo.subscriber_by_email, "legacy2@example.org")  # type: ignore[attr-defined]
    r = client.post("/v1/subscribers/confirm", json={"token": signer.for_subscriber("confirm", sub.id, 3600)})
    assert r.status_code == 400 and status_of(client, "legacy2@example.org") == "pending"
