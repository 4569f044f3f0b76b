"""Publisher transcripts (`podcast:transcript`): WebVTT, SRT, Podcasting 2.0 JSON, HTML and plain text parsed
into the shared `Transcript`, and `Transcript` rendered back to WebVTT and SRT.

Real files are messy: byte-order marks, CRLF, cue times without hours, styling tags, one JSON segment per
word. Parsing is lenient about all of that and strict only about producing no text at all."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any

import orjson

from podbrief.errors import PermanentError
from podbrief.events.models import Segment, Transcript, Word

VTT_TYPES = frozenset({"text/vtt", "text/webvtt"})
SRT_TYPES = frozenset({"application/x-subrip", "application/srt", "text/srt", "text/x-srt", "application/x-srt"})
JSON_TYPES = frozenset({"application/json", "text/json"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
# Best first: timed formats keep timestamps that insights link to; JSON often has speakers too.
PREFERENCE = ("json", "vtt", "srt", "html", "text")

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?"
_TIMING = re.compile(r"^\s*" + _TIME + r"\s*-->\s*" + _TIME)
_TAG = re.compile(r"<[^>]*>")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_SPACE = re.compile(r"[ \t\u00a0]+")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


def kind_of(mime: str | None) -> str | None:
    """The transcript format a MIME type names ("json", "vtt", "srt", "html", "text"), or None."""
    m = (mime or "").split(";", 1)[0].strip().lower()
    if m in VTT_TYPES:
        return "vtt"
    if m in SRT_TYPES:
        return "srt"
    if m in JSON_TYPES or m.endswith("+json"):
        return "json"
    if m in HTML_TYPES:
        return "html"
    if m in TEXT_TYPES:
        return "text"
    return None


def _sniff(text: str) -> str:
    head = text.lstrip()[:200]
    if head.startswith("WEBVTT"):
        return "vtt"
    if head.startswith(("{", "[")):
        return "json"
    if re.search(r"-->", text[:2000]):
        return "srt"
    if re.match(r"(?is)\s*(<!doctype html|<html|<body|<p[\s>]|<div)", head):
        return "html"
    return "text"


def _decode(body: bytes) -> str:
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom) :].decode(enc, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", "replace")


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    value = float(int(h or 0) * 3600 + int(m) * 60 + int(s))
    if frac:
        value += int(frac.ljust(3, "0")[:3]) / 1000
    return value


def _clean(text: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", text))).strip()


def _parse_cues(text: str) -> list[Segment]:
    """WebVTT and SRT share the shape that matters: a timing line, then text lines up to a blank line."""
    lines = text.split("\n")
    segments: list[Segment] = []
    i = 0
    while i < len(lines):
        match = _TIMING.match(lines[i])
        if not match:
            i += 1
            continue
        g = match.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() and not _TIMING.match(lines[i]):
            body.append(lines[i])
            i += 1
        raw = "\n".join(body)
        speaker = None
        voice = _VOICE.search(raw)
        if voice:
            speaker = voice.group(1).strip() or None
        cue_text = " ".join(_clean(line) for line in body if _clean(line))
        if cue_text:
            segments.append(Segment(start_s=start, end_s=max(start, end), text=cue_text, speaker=speaker))
    return segments


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        m = re.match(r"^\s*" + _TIME + r"\s*$", str(value))
        return _seconds(*m.groups()) if m else None
    return number if number >= 0 else None


def _parse_json(text: str) -> list[Segment]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"transcript JSON is malformed: {exc}", reason="bad_transcript") from exc
    items = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise PermanentError("transcript JSON has no segments list", reason="bad_transcript")
    raw: list[tuple[float, float, str, str | None]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        body = _clean(str(item.get("body") or item.get("text") or ""))
        start = _num(item.get("startTime", item.get("start")))
        if not body or start is None:
            continue
        end = _num(item.get("endTime", item.get("end")))
        speaker = item.get("speaker")
        raw.append(
            (
                start,
                max(start, end if end is not None else start),
                body,
                str(speaker).strip() or None if speaker is not None else None,
            )
        )
    if raw and sum(len(b.split()) for _, _, b, _ in raw) / len(raw) <= 2.0:
        return _merge_words(raw)
    return [Segment(start_s=s, end_s=e, text=b, speaker=sp) for s, e, b, sp in raw]


def _merge_words(raw: list[tuple[float, float, str, str | None]]) -> list[Segment]:
    """Word-per-segment JSON (common from hosted transcription) becomes sentence-sized segments with words."""
    segments: list[Segment] = []
    words: list[Word] = []
    speaker: str | None = None

    def flush() -> None:
        if words:
            segments.append(
                Segment(
                    start_s=words[0].start_s,
                    end_s=max(w.end_s for w in words),
                    text=" ".join(w.text for w in words),
                    speaker=speaker,
                    words=tuple(words),
                )
            )
            words.clear()

    for start, end, body, who in raw:
        if words and (who != speaker or start - words[0].start_s > 30.0):
            flush()
        speaker = who
        words.append(Word(start_s=start, end_s=end, text=body))
        if _SENTENCE_END.search(body) and end - words[0].start_s >= 1.0:
            flush()
    flush()
    return segments


class _TextOfHtml(HTMLParser):
    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"})
    _SKIP = frozenset({"script", "style", "head", "title", "noscript"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _plain_lines(text: str) -> list[str]:
    return [line for line in (_SPACE.sub(" ", raw).strip() for raw in text.split("\n")) if line]


def parse_publisher_transcript(
    body: bytes, mime: str, *, language: str | None = None, duration_s: float | None = None
) -> Transcript:
    """Parse a publisher transcript. `mime` picks the format; a generic or wrong type is sniffed from the
    content. Untimed formats give one segment spanning `duration_s` (0 when unknown)."""
    text = _decode(body).replace("\r\n", "\n").replace("\r", "\n")
    kind = kind_of(mime) or _sniff(text)
    if kind in ("text", "html") and _sniff(text) in ("vtt", "srt"):
        # Servers often label caption files text/plain; the timings are worth keeping.
        kind = _sniff(text)
    segments: list[Segment]
    if kind in ("vtt", "srt"):
        segments = _parse_cues(text)
    elif kind == "json":
        segments = _parse_json(text)
    else:
        if kind == "html":
            parser = _TextOfHtml()
            parser.feed(text)
            parser.close()
            lines = _plain_lines("".join(parser.parts))
        else:
            lines = _plain_lines(text)
        joined = " ".join(lines)
        end = float(duration_s or 0.0)
        segments = [Segment(start_s=0.0, end_s=end, text=joined)] if joined else []
    if not segments:
        raise PermanentError(f"the {kind} transcript has no text", reason="empty_transcript")
    segments.sort(key=lambda s: s.start_s)
    end = max(s.end_s for s in segments)
    return Transcript(
        text=" ".join(s.text for s in segments),
        language=language,
        duration_s=max(end, float(duration_s or 0.0)),
        segments=tuple(segments),
        source="publisher",
        model=f"publisher:{kind}",
    )


def _stamp(seconds: float, sep: str) -> str:
    ms = round(max(0.0, seconds) * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _timed(t: Transcript) -> Iterable[Segment]:
    for seg in t.segments:
        # An untimed segment still needs a cue that players accept: give it at least a second.
        yield seg if seg.end_s > seg.start_s else seg.model_copy(update={"end_s": seg.start_s + 1.0})


def to_vtt(t: Transcript) -> str:
    out = ["WEBVTT", ""]
    for i, seg in enumerate(_timed(t), 1):
        text = html.escape(seg.text, quote=False)
        if seg.speaker:
            text = f"<v {html.escape(seg.speaker, quote=False)}>{text}"
        out += [str(i), f"{_stamp(seg.start_s, '.')} --> {_stamp(seg.end_s, '.')}", text, ""]
    return "\n".join(out)


def to_srt(t: Transcript) -> str:
    out: list[str] = []
    for i, seg in enumerate(_timed(t), 1):
        text = seg.text.replace("-->", "->")
        if seg.speaker:
            text = f"{seg.speaker}: {text}"
        out += [str(i), f"{_stamp(seg.start_s, ',')} --> {_stamp(seg.end_s, ',')}", text, ""]
    return "\n".join(out)


__all__ = ["PREFERENCE", "kind_of", "parse_publisher_transcript", "to_srt", "to_vtt"]
