"""#21 items 2 and 9: addresses with non-ASCII local parts are refused with a 422 problem that says why, and
nothing is written or sent; the per-address rate limit counts one mailbox however its domain is spelled
(Unicode, punycode, NFD, case)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from podbrief_delivery.addresses import mailbox_key, normalise_email
from podbrief_delivery.settings import RateLimitSettings

pytestmark = pytest.mark.unit

NON_ASCII = ("josé@example.org", "ｊｏｓｅ@example.org", "\ufffd\ufffd@example.org", "Ωμέγα@example.org")


def stored(client: TestClient) -> dict[str, int]:
    counts: dict[str, int] = client.portal.call(client.app.state.deps.repo.counts_by_status)  # type: ignore[attr-defined]
    return counts


@pytest.mark.parametrize("email", NON_ASCII)
def test_non_ascii_local_parts_get_a_422_problem_and_nothing_is_written(
    started: Callable[..., TestClient], email: str
) -> None:
    client = started("delivery")
    r = client.post("/v1/subscribers", json={"email": email, "interests": "x"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "non-ASCII" in r.json()["detail"] and "SMTPUTF8" in r.json()["detail"]
    page = client.post("/signup", data={"email": email, "interests": "x", "timezone": "UTC", "delivery_hour": "7"})
    assert page.status_code == 422 and "non-ASCII" in page.text
    assert stored(client) == {} and client.app.state.mailer.messages == []  # type: ignore[attr-defined]


def test_undecodable_form_bytes_are_refused_without_a_row(started: Callable[..., TestClient]) -> None:
    client = started("delivery")
    body = b"email=%FF%FE%40example.org&interests=x&timezone=UTC&delivery_hour=7"
    page = client.post("/signup", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 422, page.text
    assert stored(client) == {} and client.app.state.mailer.messages == []  # type: ignore[attr-defined]


def test_international_domains_are_one_mailbox() -> None:
    spellings = (
        "Reader@bücher.example",
        "reader@xn--bcher-kva.example",
        unicodedata.normalize("NFD", "reader@BÜCHER.example"),
    )
    assert {normalise_email(s) for s in spellings} == {"reader@xn--bcher-kva.example"}
    assert {mailbox_key(s) for s in spellings} == {"reader@xn--bcher-kva.example"}
    # Input that is no address at all still counts by one key per spelling of the same text.
    assert mailbox_key("Not An Address") == mailbox_key("not an address")


def test_the_per_address_limit_counts_every_spelling_of_a_mailbox(started: Callable[..., TestClient]) -> None:
    limits = RateLimitSettings(signup_per_email=5, signup_per_ip=1000, confirm_per_ip=1000)
    client = started("delivery", rate_limits=limits)
    spellings = (
        "reader@bücher.example",
        "reader@xn--bcher-kva.example",
        unicodedata.normalize("NFD", "reader@bücher.example"),
        "READER@BÜCHER.EXAMPLE",
    )
    answers = [client.post("/v1/subscribers", json={"email": s, "interests": "x"}).status_code for s in spellings * 4]
    assert answers.count(202) == 5 and answers.count(429) == len(answers) - 5, answers
    mails = client.app.state.mailer.messages  # type: ignore[attr-defined]
    assert len(mails) == 5 and {str(m["To"]) for m in mails} == {"reader@xn--bcher-kva.example"}
    assert stored(client) == {"pending": 1}
