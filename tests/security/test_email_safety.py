"""Feed-derived text in delivery's output: no header injection in the confirmation and brief emails, everything
escaped in the HTML email, the web page and the archive, and only http(s) links, whatever the feed said.

The hostile insight travels the real path: an InsightClustered event on the service's bus, the handler, the
ranking, the composer, the real renderer and the email package, then the web page through its signed link."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from podbrief.events import RelatedInsight
from podbrief_delivery.brief import Brief, safe_http_url
from podbrief_delivery.render import Links, Renderer, header_safe
from podbrief_delivery.tokens import Signer
from podbrief_testing.delivery import clustered
from podbrief_testing.html_tags import start_tags

pytestmark = pytest.mark.unit

KEY = {"X-API-Key": "security-suite-admin-key-0123456789"}
INJECT = "\r\nBcc: victim@evil.example\r\nSubject: pwned\r\nX-Injected: 1\n\nbody"
EVIL_TEXT = "Solar batteries pay off <script>alert('text')</script>" + INJECT
EVIL_SHOW = 'Solar Show"><img src=x onerror=alert(1)>' + INJECT
EVIL_TITLE = 'Batteries </title><script>alert(2)</script>" onerror="alert(3)' + INJECT
EVIL_QUOTE = "solar batteries</p><iframe src=javascript:alert(4)>" + "\u2028X-Unicode: 1\x85X-Nel: 1"
BAD_LINKS = (
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "https://user:pass@evil.example/",
    "https://evil.example/a b",
    "//evil.example/x",
    "java\tscript:alert(1)",
)
BRIEF_HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "x-podbrief-brief-id",
    "x-podbrief-correlation-id",
    "mime-version",
    "content-type",
}
CONFIRM_HEADERS = {"subject", "from", "to", "date", "message-id", "mime-version", "content-type"}


def assert_inert(html: str, base: str = "http://testserver", *, script_ok: bool = False) -> None:
    for tag, attrs in start_tags(html):
        assert tag not in ("iframe", "img", "object", "embed") or attrs.get("src", "").startswith(base), (tag, attrs)
        if not script_ok:
            assert tag != "script", attrs
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in ("href", "src", "action", "formaction"):
                scheme = urlsplit(value or "").scheme.lower()
                assert scheme in ("http", "https") or (value or "").startswith("/"), (tag, name, value)
    # Feed text shows up only as escaped text ("&lt;script&gt;..."), never as markup.
    for needle in ("<script>alert", "<img src=x", "<iframe"):
        assert needle not in html


def parse(msg: EmailMessage) -> EmailMessage:
    """What a mail server would see: the message as bytes on the wire, parsed back."""
    wire = bytes(msg).replace(b"\r\n", b"\n")
    head = wire.split(b"\n\n", 1)[0]
    # Folded continuation lines start with whitespace; no line of the header block may start a new header
    # that the code did not set.
    starts = [line.split(b":", 1)[0].lower() for line in head.split(b"\n") if line and not line[:1].isspace()]
    assert b"bcc" not in starts and b"x-injected" not in starts and starts.count(b"subject") == 1, starts
    parsed = message_from_bytes(wire, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def assert_headers_clean(msg: EmailMessage, expected: set[str], to: str) -> None:
    names = {k.lower() for k in msg.keys()}
    assert names == expected, names ^ expected
    assert len(msg.get_all("To") or []) == 1 and msg["To"] == to
    assert len(msg.get_all("Subject") or []) == 1
    for value in msg.values():
        assert "\r" not in str(value) and "\n" not in str(value)
        assert "pwned" not in str(value).split(":")[0]
    assert "victim@evil.example" not in (msg["To"] or "")


def wait_for(cond: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def hostile_delivery(started: Callable[..., TestClient], kit: Any) -> tuple[TestClient, Any]:
    client = started("delivery")
    member = kit.join(client, "reader@example.org", "solar batteries")
    now = datetime.now(UTC)
    related = tuple(
        RelatedInsight(
            insight_id=uuid.uuid4(),
            text=f"<script>alert('related {n}')</script>" + INJECT,
            show=EVIL_SHOW,
            episode_title=EVIL_TITLE,
            episode_id=uuid.uuid4(),
            start_s=30.0 if n % 2 else None,
            link=link,
            score=0.9,
        )
        for n, link in enumerate(BAD_LINKS)
    )
    events = [
        clustered(
            show=EVIL_SHOW,
            title=EVIL_TITLE + str(n),
            text=EVIL_TEXT,
            quote=EVIL_QUOTE + str(n),
            link=link,
            enclosure=BAD_LINKS[-1 - n],
            importance=0.95,
            related=related,
            published_at=now - timedelta(hours=2),
        )
        for n, link in enumerate(BAD_LINKS[:5])
    ]
    bus = client.app.state.service.bus
    for ev in events:
        client.portal.call(bus.publish, ev)
    repo = client.app.state.deps.repo
    wait_for(lambda: client.portal.call(repo.count_insights) == len(events), "the insights to be stored")
    r = client.post("/v1/admin/deliveries/run", json={"force": True}, headers=KEY)
    assert r.status_code == 200, r.text
    return client, member


def brief_email(client: TestClient) -> EmailMessage:
    mails = [m for m in client.app.state.mailer.messages if m["X-Podbrief-Brief-Id"]]
    assert len(mails) == 1
    msg: EmailMessage = mails[0]
    return msg


def test_brief_email_headers_cannot_be_injected(hostile_delivery: tuple[TestClient, Any]) -> None:
    client, member = hostile_delivery
    msg = parse(brief_email(client))
    assert_headers_clean(msg, BRIEF_HEADERS, member.email)
    assert msg["Subject"].startswith("Your podcast brief")
    assert "<script>" in msg["Subject"]  # the text survives as text: it is a header, not markup
    assert msg["List-Unsubscribe"].startswith("<http://testserver/unsubscribe?t=")


def test_brief_email_html_and_text_are_inert(hostile_delivery: tuple[TestClient, Any]) -> None:
    client, _ = hostile_delivery
    msg = parse(brief_email(client))
    html_part = msg.get_body(preferencelist=("html",))
    text_part = msg.get_body(preferencelist=("plain",))
    assert html_part is not None and text_part is not None
    html = html_part.get_content()
    assert "&lt;script&gt;alert(" in html and 'Solar Show"&gt;&lt;img src=x' in html
    assert_inert(html)
    # Every link in the email goes to our own pages (signed) or to http(s) episode pages.
    tags = start_tags(html)
    hrefs = [a["href"] or "" for t, a in tags if t == "a"]
    assert hrefs and all(h.startswith(("http://testserver/", "https://")) for h in hrefs), hrefs
    text = text_part.get_content()
    for bad in BAD_LINKS:
        assert "Listen: " + bad.strip() not in text


def test_web_page_archive_and_json_are_inert(hostile_delivery: tuple[TestClient, Any]) -> None:
    client, member = hostile_delivery
    html = brief_email(client).get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    tags = start_tags(html)
    web = next(a["href"] for t, a in tags if t == "a" and "/briefs/" in (a.get("href") or ""))
    assert web is not None
    page = client.get(web.replace("http://testserver", ""))
    assert page.status_code == 200
    assert "&lt;script&gt;alert(" in page.text
    assert_inert(page.text)
    assert "script-src" not in page.headers["content-security-policy"]
    archive_link = next(a["href"] for t, a in tags if t == "a" and "/archive" in (a.get("href") or ""))
    assert archive_link is not None
    archive = client.get(archive_link.replace("http://testserver", ""))
    assert archive.status_code == 200
    assert_inert(archive.text)
    latest = client.get(
        f"/v1/subscribers/{member.id}/briefs/latest", headers={"Authorization": f"Bearer {member.api_key}"}
    )
    assert latest.status_code == 200 and latest.headers["content-type"] == "application/json"
    brief = latest.json()
    assert brief["items"]
    for item in brief["items"]:
        assert item["episode_url"] is None or urlsplit(item["episode_url"]).scheme in ("http", "https")
        assert item["timestamp_url"] is None or urlsplit(item["timestamp_url"]).scheme in ("http", "https")
        for r in item["related"]:
            assert r["timestamp_url"] is None or urlsplit(r["timestamp_url"]).scheme in ("http", "https")


def test_confirmation_email_carries_nothing_of_the_sign_up(started: Callable[..., TestClient]) -> None:
    client = started("delivery")
    r = client.post("/v1/subscribers", json={"email": "new@example.org", "interests": EVIL_TEXT, "topics": [INJECT]})
    assert r.status_code == 202
    msg = parse(client.app.state.mailer.messages[-1])
    assert_headers_clean(msg, CONFIRM_HEADERS, "new@example.org")
    assert msg["Subject"] == "Confirm your podbrief subscription"
    html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert_inert(html)
    assert "alert" not in html
    # An address that would carry a header is refused before anything is sent.
    for email in ("a@example.org\r\nBcc: victim@evil.example", "a@example.org\nX: y", "a@example.org\x85X: y"):
        r = client.post("/v1/subscribers", json={"email": email, "interests": "x"})
        assert r.status_code == 422
    assert len(client.app.state.mailer.messages) == 1


def test_stored_briefs_with_bad_links_still_render_no_link() -> None:
    """Defence in depth: a brief stored with a dangerous URL (older data, a bug upstream) renders it as no
    link at all, in the email and on the page."""
    sub = uuid.uuid4()
    renderer = Renderer()
    links = Links("http://testserver", Signer("x" * 32), 3600)
    for bad in BAD_LINKS:
        body: dict[str, Any] = {
            "brief_id": str(uuid.uuid4()),
            "subscriber_id": str(sub),
            "brief_date": date(2026, 1, 2).isoformat(),
            "generated_at": datetime(2026, 1, 2, tzinfo=UTC).isoformat(),
            "kind": "full",
            "note": "<b>note</b>" + INJECT,
            "items": [
                {
                    "insight_id": str(uuid.uuid4()),
                    "rank": 1,
                    "text": EVIL_TEXT,
                    "quote": EVIL_QUOTE,
                    "speaker": EVIL_SHOW,
                    "show": EVIL_SHOW,
                    "episode_title": EVIL_TITLE,
                    "episode_id": str(uuid.uuid4()),
                    "episode_url": bad,
                    "timestamp_s": 1.0,
                    "timestamp_label": "00:01",
                    "timestamp_url": bad,
                    "importance": 0.5,
                    "cluster_size": 1,
                    "cluster_shows": 1,
                    "score": 1.0,
                    "explanation": "<i>why</i>",
                    "related": [
                        {
                            "insight_id": str(uuid.uuid4()),
                            "text": EVIL_TEXT,
                            "show": EVIL_SHOW,
                            "episode_title": EVIL_TITLE,
                            "timestamp_label": "00:02",
                            "timestamp_url": bad,
                        }
                    ],
                }
            ],
        }
        brief = Brief.model_validate(body)
        ctx = links.for_brief(brief)
        msg = parse(renderer.brief_email(brief, ctx, to="reader@example.org", sender="podbrief <brief@podbrief.local>"))
        assert_headers_clean(msg, BRIEF_HEADERS, "reader@example.org")
        html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert_inert(html)
        page = renderer.page("page.html.j2", title=EVIL_TITLE, brief=brief, links=ctx)
        assert_inert(page)
        text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        assert "Listen:" not in text


@pytest.mark.parametrize("bad", BAD_LINKS)
def test_only_http_links_pass(bad: str) -> None:
    assert safe_http_url(bad) is None
    assert safe_http_url("https://example.com/ep?x=1#t=3") == "https://example.com/ep?x=1#t=3"
    assert safe_http_url("HTTP://EXAMPLE.COM/") == "HTTP://EXAMPLE.COM/"


def test_header_safe_collapses_every_line_break() -> None:
    for sep in ("\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"):
        out = header_safe(f"Title{sep}Bcc: x")
        assert out.splitlines() == [out], repr(sep)


def test_the_signup_form_reflects_input_escaped(started: Callable[..., TestClient]) -> None:
    """The form is shown again with the visitor's values after an error; they come back as text."""
    client = started("delivery")
    hostile = '"><script>alert(1)</script><input value="'
    r = client.post(
        "/signup",
        data={
            "email": hostile,
            "interests": "</textarea><script>alert(2)</script>",
            "topics": hostile,
            "timezone": hostile,
        },
    )
    assert r.status_code == 422
    tags = start_tags(r.text)
    scripts = [a for t, a in tags if t == "script"]
    assert len(scripts) == 1  # the page's own time-zone helper, nothing injected
    assert "<script>alert" not in r.text and "&lt;script&gt;alert(" in r.text
    assert "script-src 'unsafe-inline'" in r.headers["content-security-policy"]
    assert "form-action 'self'" in r.headers["content-security-policy"]
