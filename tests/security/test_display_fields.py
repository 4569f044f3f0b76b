"""#21 items 4 and 5 on delivery's side: whatever a feed or transcript slipped through upstream, single-line
display fields (show, episode title, speaker, insight text, quote, topics) and the Subject carry no line
breaks (no forged "Unsubscribe:" line in the plain-text email) and no bidi-control or zero-width characters,
in the HTML and plain-text email, the web page and the headers."""

from __future__ import annotations

import re
import uuid
from datetime import date
from email import message_from_bytes, policy
from typing import Any

import pytest
from podbrief.text import BIDI_CONTROLS, INVISIBLE
from podbrief_delivery.brief import Brief
from podbrief_delivery.render import Links, Renderer, header_safe
from podbrief_delivery.tokens import Signer

pytestmark = pytest.mark.unit

FORGED = "\r\nUnsubscribe: https://evil.example/u\n\nReply to win"
HIDDEN = "\u202egnp.exe\u200b\u2066x\u2069\ufeff"


def hostile_brief(kit: Any) -> Brief:
    body = kit.brief_body(
        uuid.uuid4(),
        date(2026, 1, 2),
        text="Batteries pay off" + HIDDEN + FORGED,
        show="Energy" + HIDDEN + FORGED,
        episode_title="Ep" + HIDDEN + FORGED,
        quote="they pay" + HIDDEN + "\u2028for themselves",
    )
    body["items"][0]["speaker"] = "Eve" + HIDDEN + FORGED
    body["items"][0]["topics"] = ["energy" + HIDDEN + FORGED]
    return Brief.model_validate(body)


def assert_no_hidden(text: str, where: str) -> None:
    found = [f"U+{ord(c):04X}" for c in text if c in BIDI_CONTROLS + INVISIBLE]
    assert not found, (where, found)


def test_email_and_page_fields_are_single_clean_lines(kit: Any) -> None:
    brief = hostile_brief(kit)
    links = Links("https://podbrief.example", Signer("display-fields-secret-0123456789"), 3600).for_brief(brief)
    renderer = Renderer()
    msg = renderer.brief_email(brief, links, to="reader@example.org", sender="brief@podbrief.example")
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    parsed = message_from_bytes(raw, policy=policy.default)
    subject = str(parsed["Subject"])
    assert_no_hidden(subject, "Subject")
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    text, markup = plain.get_content(), html.get_content()
    for where, content in (("plain", text), ("html", markup), ("page", renderer_page(renderer, brief, links))):
        assert "Energy" in content and "Batteries pay off" in content, where
        assert_no_hidden(content, where)
        # The forged line never starts a line of its own; the real unsubscribe link is the only one.
        assert not re.search(r"(?m)^\s*Unsubscribe: https://evil", content), where
        assert not re.search(r"(?m)^\s*Reply to win", content), where
    for item in brief.items:
        for value in (item.show, item.episode_title, item.speaker or "", item.text, item.quote, *item.topics):
            assert "\n" not in value and "\r" not in value and "\u2028" not in value
            assert_no_hidden(value, "brief field")


def renderer_page(renderer: Renderer, brief: Brief, links: dict[str, Any]) -> str:
    page: str = renderer.html.get_template("page.html.j2").render(
        title="Your brief", brief=brief, links=links, subject="s", page_title="p"
    )
    return page


def test_header_safe_drops_bidi_and_zero_width() -> None:
    assert (
        header_safe("Solar\u202e news\u200b today\r\nBcc: x@example.org", 200) == "Solar news today Bcc: x@example.org"
    )
