"""OPML subscription lists: the feeds listed in one, and the registry written as one."""

from __future__ import annotations

from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from podbrief.errors import PermanentError
from podbrief.text import single_line

MAX_OUTLINES = 100_000


def parse_opml(body: bytes) -> list[dict[str, str]]:
    """Feeds listed in an OPML document: [{"url", "title"}] from every outline with an xmlUrl.

    Raises PermanentError, reason: xml_entities | malformed_xml | bad_encoding | not_opml | too_many_outlines."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise PermanentError("the OPML declares entities; refused", reason="xml_entities") from exc
    except ParseError as exc:
        raise PermanentError(f"the OPML is not well-formed XML: {exc}", reason="malformed_xml") from exc
    except (LookupError, UnicodeError, ValueError) as exc:
        # An encoding the declaration names but Python does not know, or bytes that are not in it.
        raise PermanentError(f"the OPML cannot be decoded: {exc}", reason="bad_encoding") from exc
    tag = root.tag if isinstance(root.tag, str) else ""
    if tag.rsplit("}", 1)[-1].lower() != "opml":
        raise PermanentError("not an OPML document", reason="not_opml")
    out: list[dict[str, str]] = []
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url:
            if len(out) >= MAX_OUTLINES:
                raise PermanentError(f"more than {MAX_OUTLINES} feeds in one OPML", reason="too_many_outlines")
            title = single_line(outline.get("title") or outline.get("text"), 1000)
            out.append({"url": url, "title": title})
    return out


def render_opml(feeds: list[tuple[str, str | None]], title: str = "podbrief feeds") -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{escape(title)}</title></head>",
        "  <body>",
    ]
    for url, name in feeds:
        label = quoteattr(name or url)
        lines.append(f'    <outline type="rss" text={label} title={label} xmlUrl={quoteattr(url)}/>')
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


__all__ = ["parse_opml", "render_opml"]
