"""Reading a feed document into an element tree: strictly first, then recovering the faults real feeds have.

The strict pass is defusedxml over expat, which refuses entity declarations (billion laughs) and external
references before anything else looks at the document. A document it rejects for any other reason is repaired
the way lenient feed readers do, each repair touching only the fault it names:

- `leading_junk`: a byte-order mark, whitespace or server output (a PHP warning) before the XML declaration;
- `encoding`: bytes that are not in the declared encoding (or an encoding Python does not know): the text is
  read as UTF-8 where it is valid and as Windows-1252 where it is not, or as the HTTP charset, or as what
  charset detection finds in a document that declares nothing;
- `control_chars`: characters XML 1.0 forbids (a stray ESC or NUL in a description), raw or as `&#x1B;`;
- `entities`: HTML entities XML does not define (`&nbsp;`) and bare ampersands;
- `stray_markup`: a `<` that cannot start markup (`I <3 this`);
- `undeclared_prefix`: a namespace prefix used without its declaration (`itunes:`, `atom:`, `podcast:`),
  declared with its well-known namespace.

Text inside CDATA sections is never rewritten. If the repaired document is still not well-formed, lxml reads it
in recover mode (what feedparser's bozo path and browsers do), with entity expansion, DTD loading and network
access switched off, and a document that declares entities is refused there too. The result says which
repairs were needed, so a feed is marked `recovered` with its reasons instead of being rejected."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from podbrief.errors import PermanentError

# Well-known prefixes and their namespaces, for documents that use a prefix without declaring it.
KNOWN_PREFIXES = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
    "atom": "http://www.w3.org/2005/Atom",
    "atom10": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "googleplay": "http://www.google.com/schemas/play-podcasts/1.0",
    "psc": "http://podlove.org/simple-chapters",
    "sy": "http://purl.org/rss/1.0/modules/syndication/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "wfw": "http://wellformedweb.org/CommentAPI/",
    "slash": "http://purl.org/rss/1.0/modules/slash/",
    "georss": "http://www.georss.org/georss",
    "spotify": "http://www.spotify.com/ns/rss",
    "rawvoice": "http://www.rawvoice.com/rawvoiceRssModule/",
    "fireside": "http://fireside.fm/modules/rss/fireside",
    "acast": "https://schema.acast.com/1.0/",
}
UNDECLARED_NS = "urn:podbrief:undeclared:"
# The kinds of repair, also the `reason` label of the recovered-feeds metric.
REPAIRS = (
    "leading_junk",
    "encoding",
    "control_chars",
    "entities",
    "stray_markup",
    "undeclared_prefix",
    "xml_recover",
)


@dataclass(frozen=True)
class Repair:
    kind: str  # one of REPAIRS
    detail: str


@dataclass(frozen=True)
class Document:
    root: Element
    repairs: tuple[Repair, ...] = ()


def read_document(body: bytes, *, charset: str | None = None) -> Document:
    """The document's root element. `charset` is the HTTP Content-Type charset, a hint used only when the
    document's own declaration does not decode it.

    Raises PermanentError, reason: empty | not_a_feed | xml_entities | malformed_xml."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise PermanentError("the feed is empty", reason="empty")
    sniff = head[:512].lower()
    if sniff.startswith((b"<!doctype html", b"<html")) or (
        b"<html" in sniff and not any(t in sniff for t in (b"<rss", b"<feed", b"<rdf"))
    ):
        raise PermanentError("this is an HTML page, not a feed", reason="not_a_feed")
    try:
        return Document(_strict(body))
    except ParseError as exc:
        first_error = exc
    repairs: list[Repair] = []
    text = _repaired(body, charset, repairs)
    try:
        return Document(_strict(text), tuple(repairs))
    except ParseError as exc:
        still = exc
    root = _recover(text)
    if root is None:
        raise PermanentError(f"the feed is not well-formed XML: {first_error}", reason="malformed_xml")
    repairs.append(Repair("xml_recover", str(still)[:200]))
    return Document(root, tuple(repairs))


def _strict(body: bytes) -> Element:
    try:
        root: Element = SafeET.fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise _entities_refused(type(exc).__name__) from exc
    except (ValueError, LookupError, UnicodeError) as exc:
        # An unknown or inconsistent encoding: the repairs read the bytes themselves.
        raise ParseError(str(exc)) from exc
    return root


def _entities_refused(what: str) -> PermanentError:
    return PermanentError(
        f"the feed declares XML entities or external references ({what}); refused as a possible XML bomb",
        reason="xml_entities",
    )


def _recover(body: bytes) -> Element | None:
    from lxml import etree

    parser = etree.XMLParser(
        recover=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
    )
    try:
        root: Any = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise _entities_refused("DTD entities")
    # lxml's elements answer the ElementTree API the parser uses (find, iter, get, text, itertext).
    recovered: Element = root
    return recovered


# Textual repairs ---------------------------------------------------------------------------------------------
_DECLARATION = re.compile(rb"^<\?xml[^>]*\?>", re.I)
_ROOT_START = re.compile(rb"<(?:!--|!DOCTYPE|rss[\s>]|feed[\s>]|(?:[A-Za-z_][\w.-]*:)?RDF[\s>])", re.I)
_DECLARED_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.I)
_CDATA = re.compile(r"(<!\[CDATA\[.*?\]\]>)", re.S)
_BAD_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_BAD_CHAR_REFS = re.compile(r"&#(?:0*(?:[0-8]|1[124-9]|2[0-9]|3[01])|x0*(?:[0-8bcBCeEfF]|1[0-9a-fA-F]));")
_ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)([A-Za-z][A-Za-z0-9]{0,31};)?")
_STRAY_LT = re.compile(r"<(?![A-Za-z_:/!?])")
_PREFIX_USE = re.compile(r"</?([A-Za-z_][\w.-]*):[A-Za-z_]|\s([A-Za-z_][\w.-]*):[A-Za-z_][\w.-]*\s*=")
_PREFIX_DECL = re.compile(r"xmlns:([A-Za-z_][\w.-]*)\s*=")
_FIRST_ELEMENT = re.compile(r"<([A-Za-z_][\w.:-]*)")
_STRAY_BYTES = re.compile("[\udc80-\udcff]+")
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _repaired(body: bytes, charset: str | None, repairs: list[Repair]) -> bytes:
    start = body.find(b"<?xml", 0, 8192)
    if start < 0:
        # No declaration: the document starts at its root element (or a comment or DOCTYPE before it).
        root = _ROOT_START.search(body, 0, 8192)
        start = root.start() if root else 0
    stripped = body[start:]
    if body[:start].strip(b"\xef\xbb\xbf \t\r\n\x00\xff\xfe"):
        repairs.append(Repair("leading_junk", f"{start} bytes before the document"))
    elif body[:2] in (b"\xff\xfe", b"\xfe\xff"):
        stripped = body  # a UTF-16 byte-order mark: _decode reads it
    text = _decode(stripped, charset, repairs)
    segments = _CDATA.split(text)
    fixed: list[str] = []
    counts = {"control_chars": 0, "entities": 0, "stray_markup": 0}
    for i, seg in enumerate(segments):
        if i % 2:  # a CDATA section: only characters XML forbids are removed
            seg, n = _BAD_XML_CHARS.subn("", seg)
            counts["control_chars"] += n
            fixed.append(seg)
            continue
        seg, n = _BAD_XML_CHARS.subn("", seg)
        counts["control_chars"] += n
        seg, n = _BAD_CHAR_REFS.subn("", seg)
        counts["control_chars"] += n
        seg, n = _ENTITY.subn(_fix_entity, seg)
        counts["entities"] += n
        seg, n = _STRAY_LT.subn("&lt;", seg)
        counts["stray_markup"] += n
        fixed.append(seg)
    text = "".join(fixed)
    for kind, n in counts.items():
        if n:
            repairs.append(Repair(kind, f"{n} fixed"))
    text = _declare_prefixes(text, repairs)
    return text.encode("utf-8")


def _fix_entity(m: re.Match[str]) -> str:
    import html.entities

    name = m.group(1)
    if name:
        char = html.entities.html5.get(name)
        if char is not None:
            return "".join(f"&#{ord(c)};" for c in char)
    return "&amp;" + (name or "")


def _decode(body: bytes, charset: str | None, repairs: list[Repair]) -> str:
    """The document as text, with its XML declaration saying UTF-8 (the repaired bytes are UTF-8)."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if body.startswith(bom):
            text = body[len(bom) :].decode(codec, errors="replace")
            return _utf8_declaration(text)
    decl = _DECLARATION.match(body)
    declared_raw = _DECLARED_ENCODING.search(decl.group(0)) if decl else None
    declared = _codec(declared_raw.group(1).decode("ascii")) if declared_raw else None
    hint = _codec(charset) if charset else None
    candidates: tuple[str | None, ...] = (declared, hint) if declared else (hint, "utf-8")
    for candidate in candidates:
        if not candidate:
            continue
        codec = candidate
        try:
            text = body.decode(codec)
        except UnicodeDecodeError:
            continue
        if declared_raw is not None and codec != declared:
            repairs.append(Repair("encoding", f"declared {declared_raw.group(1).decode()!s}, read as {codec}"))
        return _utf8_declaration(text)
    if declared in (None, "utf-8") and _mostly_utf8(body):
        # Valid UTF-8 with stray bytes from another encoding (a title pasted from a Windows tool).
        text = _STRAY_BYTES.sub(_as_cp1252, body.decode("utf-8", errors="surrogateescape"))
        repairs.append(Repair("encoding", "UTF-8 with stray Windows-1252 bytes"))
        return _utf8_declaration(text)
    if declared in (None, "utf-8"):
        # Not UTF-8 at all: what the bytes look like when nothing is declared, else Windows-1252 (the usual
        # truth behind a wrong UTF-8 declaration, and a superset of ISO-8859-1's printable characters).
        codec = (_detect(body) if declared is None else None) or "cp1252"
    else:
        codec = declared
    said = declared_raw.group(1).decode() if declared_raw else "nothing"
    repairs.append(Repair("encoding", f"declared {said}, read as {codec}"))
    return _utf8_declaration(body.decode(codec, errors="replace"))


def _codec(name: str) -> str | None:
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None


def _mostly_utf8(body: bytes) -> bool:
    """Mostly valid UTF-8: multi-byte sequences present, and few bytes that are not."""
    valid = len(_UTF8_SEQUENCE.findall(body))
    invalid = len(body.decode("utf-8", errors="replace")) - len(body.decode("utf-8", errors="ignore"))
    return valid > 0 and invalid <= max(16, valid // 4)


def _detect(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    return _codec(best.encoding) if best is not None else None


def _as_cp1252(m: re.Match[str]) -> str:
    """Bytes that were not UTF-8 (kept as surrogates by `surrogateescape`) read as Windows-1252."""
    return bytes(ord(c) - 0xDC00 for c in m.group(0)).decode("cp1252", errors="replace")


def _utf8_declaration(text: str) -> str:
    text = text.lstrip("\ufeff")
    m = re.match(r"<\?xml[^>]*\?>", text)
    if m is None:
        return text
    return '<?xml version="1.0" encoding="utf-8"?>' + text[m.end() :]


def _declare_prefixes(text: str, repairs: list[Repair]) -> str:
    used = {a or b for a, b in _PREFIX_USE.findall(text)} - {"xml", "xmlns", ""}
    missing = sorted(used - set(_PREFIX_DECL.findall(text)))
    if not missing:
        return text
    decl = _DECLARATION_TEXT.match(text)
    start = decl.end() if decl else 0
    name_end = _root_name_end(text, start)
    if name_end is None:
        return text
    added = "".join(f' xmlns:{p}="{KNOWN_PREFIXES.get(p.lower(), UNDECLARED_NS + p)}"' for p in missing)
    repairs.append(Repair("undeclared_prefix", ", ".join(missing)))
    return text[:name_end] + added + text[name_end:]


_DECLARATION_TEXT = re.compile(r"<\?xml[^>]*\?>")


def _root_name_end(text: str, start: int) -> int | None:
    """Where the document element's name ends in its start tag, skipping comments, PIs and DOCTYPE."""
    pos = start
    while True:
        lt = text.find("<", pos)
        if lt < 0:
            return None
        if text.startswith("<!--", lt):
            end = text.find("-->", lt)
            pos = end + 3 if end >= 0 else len(text)
        elif text.startswith(("<?", "<!"), lt):
            end = text.find(">", lt)
            pos = end + 1 if end >= 0 else len(text)
        else:
            m = _FIRST_ELEMENT.match(text, lt)
            return m.end() if m else None


__all__ = ["REPAIRS", "Document", "Repair", "read_document"]
