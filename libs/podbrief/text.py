"""Text that comes from outside (feeds, publisher files) made safe to show: one-line fields, invisible and
control characters, length bounds.

A single-line field (a show or episode title, a person's name, a MIME type) is shown in email headers, the
plain-text email, HTML and a terminal. A CR or LF inside it would let a publisher write lines of their own
(a fake "Unsubscribe:" line); a bidi override (U+202E) reverses what follows it; a zero-width space hides
inside a word. So every run of whitespace, line breaks included, becomes one space, and control,
bidi-control and invisible characters are removed. Zero-width joiners (U+200C, U+200D) stay: emoji sequences
and several scripts need them, and they cannot move or hide text."""

from __future__ import annotations

import html
import re

# Explicit bidi embeddings, overrides and isolates, and the directional marks.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Characters that render as nothing: zero-width space, word joiner, invisible operators, BOM, Mongolian vowel
# separator, and the tag characters (U+E0000 block) that can smuggle hidden text.
INVISIBLE = "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e"
_C0_C1 = "".join(chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)))

# Removed from single-line fields (whitespace among the controls is folded before this runs).
_UNSAFE_LINE = re.compile(f"[{re.escape(_C0_C1 + BIDI_CONTROLS + INVISIBLE)}\U000e0000-\U000e007f]")
# Removed from multi-line text: controls other than tab and newline, and the invisible characters.
_UNSAFE_TEXT = re.compile(
    "[" + re.escape("".join(c for c in _C0_C1 if c not in "\t\n") + INVISIBLE) + "\U000e0000-\U000e007f]"
)
# Terminal escape sequences as a whole (CSI "ESC [ ... final", OSC "ESC ] ... BEL or ESC \\", two-character
# escapes, and the 8-bit CSI and OSC), so no "[31m" is left behind once the ESC itself would be removed.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")
_SPACES = re.compile(r"[ \t\u00a0]+")
ELLIPSIS = "…"


def single_line(value: object, max_chars: int | None = None) -> str:
    """One line of display text: whitespace of every kind (CR, LF, tab, U+2028, NBSP, ...) folded to single
    spaces, terminal escape sequences, control, bidi-control and invisible characters removed, and at most
    `max_chars` characters (cut at a word boundary when one is near, ending in "…")."""
    text = " ".join(_ESCAPES.sub("", str(value or "")).split())
    cleaned = _UNSAFE_LINE.sub("", text)
    if cleaned != text:
        # A removed character may have stood between two spaces.
        text = " ".join(cleaned.split())
    return clip(text, max_chars)


def multi_line(value: object, max_chars: int | None = None) -> str:
    """Plain text that may keep its line breaks: CRLF and CR become LF, terminal escape sequences, controls
    other than tab and LF and the invisible characters are removed, runs of spaces and of blank lines are
    collapsed."""
    text = _ESCAPES.sub("", str(value or "")).replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = text.replace("\u2029", "\n\n")
    text = _UNSAFE_TEXT.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return clip("\n".join(line.strip() for line in text.strip().split("\n")), max_chars)


_COMMENTS = re.compile(r"<!--.*?-->", re.S)
_INVISIBLE_ELEMENTS = re.compile(r"<(script|style|head|template)\b[^>]*>.*?</\1\s*>", re.I | re.S)
_BREAKS = re.compile(r"<\s*(?:br|hr|/?p|/?div|/?li|/?ul|/?ol|/?h[1-6]|/?tr|/?blockquote|/?pre|/?section)\b[^>]*>", re.I)
_TAGS = re.compile(r"</?[A-Za-z][^>]*>|<![^>]*>")


def html_to_text(value: object, max_chars: int | None = None) -> str:
    """Plain text of an HTML fragment (a show note): block elements become line breaks, tags go, entities are
    decoded, and markup that was escaped once more (`&lt;img&gt;`) goes too, so no tag survives as text that a
    later renderer could mistake for markup."""
    text = str(value or "")
    if "<" in text or "&" in text:
        text = _COMMENTS.sub("", text)
        text = _INVISIBLE_ELEMENTS.sub("", text)
        text = _BREAKS.sub("\n", text)
        text = _TAGS.sub("", text)
        text = html.unescape(text)
        if "<" in text:
            text = _TAGS.sub("", _BREAKS.sub("\n", text))
    return multi_line(text, max_chars)


def clip(text: str, max_chars: int | None) -> str:
    """`text` in at most `max_chars` characters; a cut one ends in "…", at a word boundary when one lies in
    the last fifth."""
    if max_chars is None or len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return text[:max_chars]
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars * 4 // 5:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


__all__ = ["BIDI_CONTROLS", "ELLIPSIS", "INVISIBLE", "clip", "html_to_text", "multi_line", "single_line"]
