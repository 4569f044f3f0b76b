"""#21 item 8: List-Unsubscribe goes out as a plain ASCII header (the URL as is, folded only at whitespace),
never as RFC 2047 encoded-words, in the raw bytes handed to SMTP."""

from __future__ import annotations

import re
import uuid
from datetime import date
from email import message_from_bytes, policy
from typing import Any

import pytest
from podbrief_delivery.brief import Brief
from podbrief_delivery.render import Links, PlainHeader, Renderer
from podbrief_delivery.tokens import Signer

pytestmark = pytest.mark.unit


def brief_email(kit: Any, base: str) -> tuple[bytes, str]:
    sub = uuid.uuid4()
    brief = Brief.model_validate(kit.brief_body(sub, date(2026, 1, 2)))
    links = Links(base, Signer("list-unsubscribe-secret-0123456789"), 180 * 86400).for_brief(brief)
    msg = Renderer().brief_email(brief, links, to="reader@example.org", sender="brief@podbrief.example")
    # What aiosmtplib puts on the wire for an EmailMessage: its own policy with CRLF line ends.
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), str(links["unsubscribe"])


@pytest.mark.parametrize("base", ["http://localhost:8005", "https://briefs.podcasts.example.com/some/long/prefix"])
def test_list_unsubscribe_is_the_plain_url_in_the_raw_bytes(kit: Any, base: str) -> None:
    raw, url = brief_email(kit, base)
    assert len(url) > 78  # long enough that the email package would have encoded it before
    header = re.search(rb"\r\nList-Unsubscribe:((?: [^\r\n]*\r\n)+)", raw)
    assert header is not None, raw[:2000]
    value = header.group(1)
    assert b"=?" not in value and value.isascii()
    # Unfolded (RFC 5322: remove the CRLF before whitespace), it is the URL in angle brackets.
    assert value.replace(b"\r\n", b"").strip() == f"<{url}>".encode()
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert str(parsed["List-Unsubscribe"]) == f"<{url}>"


def test_plain_header_folds_at_whitespace_only() -> None:
    long_words = " ".join(["<https://example.org/" + "a" * 60 + ">"] * 3)
    folded = PlainHeader("List-Unsubscribe", long_words).fold(policy=policy.SMTP)
    lines = folded.split("\r\n")[:-1]
    assert lines[0].startswith("List-Unsubscribe: <https://") and all(ln.startswith(" ") for ln in lines[1:])
    assert "".join(folded.split("\r\n")) == "List-Unsubscribe: " + long_words
    for bad in ("<https://example.org/é>", "<https://x>\r\nBcc: victim@example.org"):
        with pytest.raises(ValueError):
            PlainHeader("List-Unsubscribe", bad)
