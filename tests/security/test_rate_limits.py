"""Rate limits on delivery's sign-up and confirmation: the sliding window, the client address behind proxies,
and the 429 answers (RFC 9457 problem or HTML page, with Retry-After) of the API and the web form."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from podbrief_delivery.ratelimit import SignupLimits, SlidingWindow, client_address, retry_after
from podbrief_delivery.settings import RateLimitSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts_the_last_window_only() -> None:
    clock = Clock()
    window = SlidingWindow(3, 10.0, clock=clock)
    for t in (0.0, 5.0, 9.0):
        clock.now = 1000.0 + t
        assert window.hit("k") is None
    wait = window.hit("k")
    assert wait is not None and wait == pytest.approx(1.0)
    # Refused hits are not counted: the oldest hit still decides when the next one is allowed.
    clock.now = 1010.5
    assert window.hit("k") is None
    assert window.hit("k") is not None
    clock.now = 1015.5
    assert window.hit("k") is None
    assert window.hit("other") is None


def test_sliding_window_forgets_the_least_recent_keys() -> None:
    window = SlidingWindow(1, 60.0, clock=Clock(), max_keys=3)
    for key in ("a", "b", "c"):
        assert window.hit(key) is None
    assert window.hit("a") is not None  # "a" is now the most recently used
    assert window.hit("d") is None  # evicts "b"
    assert len(window._hits) == 3
    assert window.hit("b") is None
    assert window.hit("a") is not None


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after(0.001) == "1" and retry_after(1.0) == "1" and retry_after(1.2) == "2"
    assert retry_after(3599.5) == "3600"


@pytest.mark.parametrize(
    ("peer", "xff", "trusted", "expected"),
    [
        ("203.0.113.9", None, (), "203.0.113.9"),
        # Without trusted proxies the header is the client's word and ignored.
        ("203.0.113.9", "198.51.100.1", (), "203.0.113.9"),
        # From a proxy that is not trusted: ignored too.
        ("203.0.113.9", "198.51.100.1", ("10.0.0.0/8",), "203.0.113.9"),
        ("10.0.0.2", "198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        # A client that prepends its own entry cannot choose its address: the rightmost untrusted hop counts.
        ("10.0.0.2", "1.2.3.4, 198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", "10.0.0.8, 10.0.0.7", ("10.0.0.0/8",), "10.0.0.8"),
        ("::1", "2001:db8::5", ("::1",), "2001:db8::5"),
        ("10.0.0.2", "", ("10.0.0.0/8",), "10.0.0.2"),
        (None, None, (), "unknown"),
    ],
)
def test_client_address(peer: str | None, xff: str | None, trusted: tuple[str, ...], expected: str) -> None:
    assert client_address(peer, xff, trusted) == expected


def test_trusted_proxies_must_be_addresses() -> None:
    with pytest.raises(ValidationError):
        RateLimitSettings(trusted_proxies=("proxy.internal",))
    assert RateLimitSettings(trusted_proxies=(" 10.0.0.0/8 ",)).trusted_proxies == ("10.0.0.0/8",)


def test_limits_can_be_turned_off() -> None:
    limits = SignupLimits(RateLimitSettings(enabled=False, signup_per_ip=1, confirm_per_ip=1))
    assert all(limits.signup("1.1.1.1", "a@example.org") is None for _ in range(5))
    assert all(limits.confirm("1.1.1.1") is None for _ in range(5))


def signup(client: TestClient, email: str, **headers: str) -> Any:
    return client.post("/v1/subscribers", json={"email": email, "interests": "tides"}, headers=headers)


def assert_limited(r: Any) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    body = r.json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests" and body["type"] == "about:blank"


def test_signup_is_limited_per_email_and_per_client(started: Callable[..., TestClient]) -> None:
    client = started("delivery", rate_limits=RateLimitSettings(signup_per_ip=4, signup_per_email=2))
    mailer = client.app.state.mailer
    assert signup(client, "victim@example.org").status_code == 202
    assert signup(client, "VICTIM@example.org ").status_code == 202
    assert_limited(signup(client, "victim@example.org"))
    assert len(mailer.messages) == 2  # the refused request sent nothing
    assert signup(client, "other@example.org").status_code == 202
    # Four requests from this client so far (one refused); the fifth is over the per-client limit.
    assert_limited(signup(client, "third@example.org"))
    # A forged X-Forwarded-For does not help without a trusted proxy.
    assert_limited(signup(client, "fourth@example.org", **{"X-Forwarded-For": "198.51.100.77"}))
    metrics = client.get("/metrics/").text
    assert 'podbrief_delivery_rate_limited_total{endpoint="signup"} 3.0' in metrics


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(started: Callable[..., TestClient]) -> None:
    limits = RateLimitSettings(signup_per_ip=1, signup_per_email=3, trusted_proxies=("10.0.0.0/8",))
    client = started("delivery", peer=("10.0.0.5", 40000), rate_limits=limits)
    assert signup(client, "a@example.org", **{"X-Forwarded-For": "198.51.100.1"}).status_code == 202
    assert signup(client, "b@example.org", **{"X-Forwarded-For": "198.51.100.2"}).status_code == 202
    assert_limited(signup(client, "c@example.org", **{"X-Forwarded-For": "198.51.100.1"}))
    # The client cannot reset its budget by prepending an address of its choice.
    assert_limited(signup(client, "d@example.org", **{"X-Forwarded-For": "7.7.7.7, 198.51.100.2"}))
    # The per-email limit holds whichever address the requests come from.
    for n in range(3, 6):
        assert signup(client, "e@example.org", **{"X-Forwarded-For": f"198.51.100.{n}"}).status_code == 202
    assert_limited(signup(client, "e@example.org", **{"X-Forwarded-For": "198.51.100.9"}))


def test_confirmation_is_limited(started: Callable[..., TestClient]) -> None:
    client = started("delivery", rate_limits=RateLimitSettings(confirm_per_ip=3))
    for _ in range(3):
        r = client.post("/v1/subscribers/confirm", json={"token": "guess.guess"})
        assert r.status_code == 400
    assert_limited(client.post("/v1/subscribers/confirm", json={"token": "guess.guess"}))
    page = client.post("/confirm", data={"t": "guess.guess"})
    assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
    assert page.headers["content-type"].startswith("text/html") and "Too many requests" in page.text


def test_the_signup_form_shares_the_limit(started: Callable[..., TestClient]) -> None:
    client = started("delivery", rate_limits=RateLimitSettings(signup_per_ip=2))
    form = {"email": "form@example.org", "interests": "tides", "timezone": "UTC", "delivery_hour": "7"}
    assert client.post("/signup", data=form).status_code == 200
    assert signup(client, "api@example.org").status_code == 202
    page = client.post("/signup", data={**form, "email": "form2@example.org"})
    assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
    assert "Too many requests" in page.text and page.headers["content-security-policy"]
    assert_limited(signup(client, "api2@example.org"))
