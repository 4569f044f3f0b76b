"""Renders the one brief model into the email (HTML with inlined CSS + plain text), the web page and pages of
the sign-up flow. Autoescaping is on for every HTML template; feed-derived text is never marked safe."""

from __future__ import annotations

import re
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import css_inline
import jinja2
from podbrief.clock import utcnow
from podbrief.text import single_line
from podbrief_delivery.brief import Brief, safe_http_url
from podbrief_delivery.tokens import Signer

TEMPLATES = Path(__file__).parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def header_safe(text: str, limit: int = 120) -> str:
    """One line for a header: CR/LF and other controls become spaces, so feed text cannot inject headers;
    bidi-control and zero-width characters go (they reorder or hide text in a Subject); then trimmed."""
    return single_line(_CONTROL.sub(" ", text), limit)


class PlainHeader(str):
    """A header sent as plain ASCII, folded only at whitespace (RFC 5322 section 2.2.3), never rewritten into
    RFC 2047 encoded-words, which some mail clients do not decode in List-Unsubscribe (RFC 2369 wants the URL
    as is). The email package keeps a value whose `name` matches the header unmodified and asks it to fold
    itself (`email.policy.EmailPolicy.header_store_parse`)."""

    name: str

    def __new__(cls, name: str, value: str) -> PlainHeader:
        if not value.isascii() or _CONTROL.search(value):
            raise ValueError(f"{name} must be printable ASCII on one line")
        obj = super().__new__(cls, value)
        obj.name = name
        return obj

    def fold(self, *, policy: Any) -> str:
        limit = policy.max_line_length or 998
        lines = [f"{self.name}:"]
        for word in self.split():
            if len(lines[-1]) + 1 + len(word) > limit and lines[-1].strip() != f"{self.name}:":
                lines.append("")
            lines[-1] += " " + word
        return str(policy.linesep).join(lines) + str(policy.linesep)


class Renderer:
    def __init__(self) -> None:
        loader = jinja2.FileSystemLoader(str(TEMPLATES))
        self.html = jinja2.Environment(
            loader=loader,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.text = jinja2.Environment(
            loader=loader,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        # Links from feeds were already filtered when the brief was built; the templates filter again, so a
        # stored brief from an older version (or a bug upstream) still cannot emit a javascript: or data: link.
        for env in (self.html, self.text):
            env.filters["http_url"] = safe_http_url
        self._inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)

    def page(self, name: str, **ctx: Any) -> str:
        return self.html.get_template(name).render(**ctx)

    def subject(self, brief: Brief) -> str:
        day = brief.brief_date.strftime("%a %d %b")
        if not brief.items:
            return header_safe(f"Your podcast brief, {day}: a quiet day")
        return header_safe(f"Your podcast brief, {day}: {brief.items[0].text}", 150)

    def email_bodies(self, brief: Brief, links: dict[str, Any]) -> tuple[str, str]:
        subject = self.subject(brief)
        html = self.html.get_template("email.html.j2").render(brief=brief, links=links, subject=subject)
        text = self.text.get_template("email.txt.j2").render(brief=brief, links=links)
        return self._inliner.inline(html), text

    def brief_email(
        self,
        brief: Brief,
        links: dict[str, Any],
        *,
        to: str,
        sender: str,
        list_id: str = "podbrief daily brief",
    ) -> EmailMessage:
        html, text = self.email_bodies(brief, links)
        msg = self._envelope(to=to, sender=sender, subject=self.subject(brief))
        # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to this URL, no page involved.
        msg["List-Unsubscribe"] = PlainHeader("List-Unsubscribe", f"<{links['unsubscribe']}>")
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = f"{header_safe(list_id, 60)} <daily.podbrief>"
        msg["X-Podbrief-Brief-Id"] = str(brief.brief_id)
        # The id one episode's events carried from its feed to this email (logs and events can be searched by it).
        msg["X-Podbrief-Correlation-Id"] = str(brief.correlation_id)
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg

    def confirmation_email(self, *, to: str, sender: str, confirm_url: str, hours: int) -> EmailMessage:
        msg = self._envelope(to=to, sender=sender, subject="Confirm your podbrief subscription")
        msg.set_content(self.text.get_template("confirm_email.txt.j2").render(confirm_url=confirm_url, hours=hours))
        html = self.html.get_template("confirm_email.html.j2").render(confirm_url=confirm_url, hours=hours)
        msg.add_alternative(self._inliner.inline(html), subtype="html")
        return msg

    @staticmethod
    def _envelope(*, to: str, sender: str, subject: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = header_safe(subject, 200)
        msg["From"] = sender
        local, _, domain = to.rpartition("@")
        msg["To"] = Address(addr_spec=to) if local and domain else to
        msg["Date"] = format_datetime(utcnow())
        sender_domain = sender.rsplit("@", 1)[-1].strip(" >") or "podbrief.local"
        msg["Message-ID"] = make_msgid(domain=sender_domain)
        return msg


class Links:
    """Every signed link of an email or page. Tokens carry the subscriber and expire after `ttl_s`."""

    def __init__(self, base_url: str, signer: Signer, ttl_s: int, *, tracking: bool = False) -> None:
        self.base = base_url.rstrip("/")
        self.signer = signer
        self.ttl_s = ttl_s
        self.tracking = tracking

    def _tok(self, purpose: str, sub: uuid.UUID, **extra: Any) -> str:
        return quote(self.signer.for_subscriber(purpose, sub, self.ttl_s, **extra), safe="")

    def unsubscribe(self, sub: uuid.UUID) -> str:
        return f"{self.base}/unsubscribe?t={self._tok('unsubscribe', sub)}"

    def archive(self, sub: uuid.UUID) -> str:
        return f"{self.base}/archive?t={self._tok('view', sub)}"

    def brief_page(self, sub: uuid.UUID, brief_id: uuid.UUID) -> str:
        return f"{self.base}/briefs/{brief_id}?t={self._tok('view', sub)}"

    def feedback(self, sub: uuid.UUID, insight_id: uuid.UUID, kind: str) -> str:
        return f"{self.base}/feedback?t={self._tok('feedback', sub, i=str(insight_id), k=kind)}"

    def insight_page(self, insight_id: uuid.UUID, sub: uuid.UUID | None = None) -> str:
        """The insight's public page; with `sub`, signed for that reader so the page offers their feedback links
        (the canonical URL a reader shares carries no token)."""
        url = f"{self.base}/insights/{insight_id}"
        return f"{url}?t={self._tok('view', sub)}" if sub is not None else url

    def topic_page(self, cluster_id: uuid.UUID) -> str:
        return f"{self.base}/topics/{cluster_id}"

    def confirm(self, sub: uuid.UUID, ttl_s: int, version: int) -> str:
        tok = quote(self.signer.for_subscriber("confirm", sub, ttl_s, v=version), safe="")
        return f"{self.base}/confirm?t={tok}"

    def for_brief(self, brief: Brief, *, feedback: bool = True) -> dict[str, Any]:
        sub = brief.subscriber_id
        return {
            "unsubscribe": self.unsubscribe(sub),
            "web": self.brief_page(sub, brief.brief_id),
            "manage": self.archive(sub),
            # Opens are counted (never per person) only when a deploy turns tracking on.
            "open_pixel": f"{self.base}/o/{self._tok('open', sub)}.gif" if self.tracking else None,
            # Each insight's own page, signed for this reader; related insights link to their public pages.
            "pages": {
                **{str(r.insight_id): self.insight_page(r.insight_id) for i in brief.items for r in i.related},
                **{str(i.insight_id): self.insight_page(i.insight_id, sub) for i in brief.items},
            },
            "feedback": {
                str(i.insight_id): {k: self.feedback(sub, i.insight_id, k) for k in ("up", "down", "more")}
                for i in brief.items
            }
            if feedback
            else {},
        }
