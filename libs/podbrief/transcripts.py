"""Publisher transcripts (`podcast:transcript`): WebVTT, SRT, Podcasting 2.0 JSON, HTML, Markdown and plain text
parsed into the shared `Transcript`, and `Transcript` rendered back to WebVTT and SRT.

Speaker names survive every format that carries them: WebVTT voices (`<v Name>`), JSON `speaker` fields,
`<cite>Name:</cite>` in Podcasting 2.0 HTML, `**Name:**` turns in Markdown (the Changelog's format) and
`Name: text` labels in SRT, HTML and plain text (a label counts when it recurs, so "Note: ..." stays text).
Formats with sparse or no times (Markdown's occasional `[04:10]`, HTML's `<time>`, untimed text with a known
duration) get a time for every word, interpolated by word count between the known times.

Real files are messy: byte-order marks, CRLF, cue times without hours, styling tags, one JSON segment per
word. Parsing is lenient about all of that and strict only about producing no text at all."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any, ClassVar

import orjson

from podbrief.errors import PermanentError
from podbrief.events.models import Segment, Transcript, Word
from podbrief.text import single_line

VTT_TYPES = frozenset({"text/vtt", "text/webvtt"})
SRT_TYPES = frozenset({"application/x-subrip", "application/srt", "text/srt", "text/x-srt", "application/x-srt"})
JSON_TYPES = frozenset({"application/json", "text/json"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
TEXT_TYPES = frozenset({"text/plain"})
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown"})
# Best first: timed formats keep timestamps that insights link to; JSON often has speakers too.
PREFERENCE = ("json", "vtt", "srt", "markdown", "html", "text")
# Speech rate assumed past the last known time when nothing better is known (150 words a minute).
SECONDS_PER_WORD = 0.4
# Bounds of the fields that stages after transcription store or validate (`clean_transcript`): an insight's
# speaker (events.Insight), transcription's language and model columns.
SPEAKER_MAX = 200
LANGUAGE_MAX = 20
MODEL_MAX = 500

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
    if m in MARKDOWN_TYPES:
        return "markdown"
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
    if re.match(r"(?is)\s*(<!doctype html|<html|<body|<p[\s>]|<div|<cite)", head):
        return "html"
    if _MD_SPEAKER.match(head):
        return "markdown"
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
    # Entities are decoded before the tags go, and tags go again after: "&lt;img onerror=...&gt;" in a cue is
    # markup that was escaped once, and must not come out as a live tag.
    return _SPACE.sub(" ", _TAG.sub("", html.unescape(_TAG.sub("", text)))).strip()


def _parse_cues(text: str) -> list[Segment]:
    """WebVTT and SRT share the shape that matters: a timing line, then text lines up to a blank line. The
    speaker is the cue's WebVTT voice, or a recurring `Name:` label (SRT), carried to the cues that follow."""
    lines = text.split("\n")
    cues: list[tuple[float, float, str, str | None]] = []
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
        voice = _VOICE.search(raw)
        cue_text = " ".join(_clean(line) for line in body if _clean(line))
        if cue_text:
            cues.append((start, max(start, end), cue_text, voice.group(1).strip() or None if voice else None))
    if any(who for *_, who in cues):
        return [Segment(start_s=a, end_s=b, text=t, speaker=who) for a, b, t, who in cues]
    labels = _recurring_labels(text for _, _, text, _ in cues)
    segments: list[Segment] = []
    speaker: str | None = None
    for a, b, cue_text, _ in cues:
        label, rest = _label(cue_text, labels)
        speaker = label or speaker
        if rest:
            segments.append(Segment(start_s=a, end_s=b, text=rest, speaker=speaker))
    return segments


_LABEL = re.compile(r"^\s*[-–>]*\s*([A-Z][\w.'’-]*(?:\s[A-Z][\w.'’-]*){0,3})\s?:\s+(\S.*)$", re.DOTALL)


def _recurring_labels(lines: Iterable[str]) -> frozenset[str]:
    """`Name:` prefixes that occur at least twice: speaker labels, unlike a one-off "Note: ..."."""
    seen: dict[str, int] = {}
    for line in lines:
        m = _LABEL.match(line)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
    return frozenset(name for name, n in seen.items() if n >= 2)


_PERSON = re.compile(r"^[A-Z][\w.'’-]*(?:\s[A-Z][\w.'’-]*){0,2}$")


def _label(line: str, labels: frozenset[str]) -> tuple[str | None, str]:
    """(speaker, text) of a line: a recurring label, or, in a text that uses labels, any name-like one (a
    guest who speaks once)."""
    m = _LABEL.match(line)
    if m and (m.group(1) in labels or (labels and _PERSON.match(m.group(1)))):
        return m.group(1), m.group(2).strip()
    return None, line.strip()


class _Timeline:
    """Paragraphs of words with a few known times (anchors); every word gets a time interpolated by word count
    between the anchors around it, so a turn between `[04:10]` and `[08:02]` lands where its words put it."""

    def __init__(self) -> None:
        self.paragraphs: list[tuple[str | None, list[str]]] = []
        self.anchors: list[tuple[int, float]] = []  # (index of the first word at or after it, seconds)
        self.words = 0

    def anchor(self, seconds: float) -> None:
        # Times out of order (a typo, a re-cut) would make words run backwards: the first order wins.
        if self.anchors and seconds <= self.anchors[-1][1]:
            return
        self.anchors.append((self.words, seconds))

    def paragraph(self, speaker: str | None, text: str) -> None:
        """Add a paragraph whose text may hold inline times (`[07:56]`, `\\[01:02:03.10\\]`) and stage notes."""
        words: list[str] = []
        pos = 0
        for m in _INLINE_MARK.finditer(text):
            piece = text[pos : m.start()].split()
            words += piece
            self.words += len(piece)
            pos = m.end()
            if m.group("t"):
                self.anchor(_stamp_seconds(m.group("t")))
        tail = text[pos:].split()
        words += tail
        self.words += len(tail)
        if words:
            self.paragraphs.append((speaker, words))

    def times(self, duration_s: float | None) -> list[float]:
        n = self.words
        anchors = list(self.anchors)
        if anchors and anchors[0][0] > 0 and anchors[0][1] > 0:
            anchors.insert(0, (0, 0.0))
        if not anchors:
            anchors = [(0, 0.0)]
        if duration_s and duration_s > anchors[-1][1] and n > anchors[-1][0]:
            anchors.append((n, float(duration_s)))
        elif len(anchors) >= 2 and n > anchors[-1][0]:
            (i0, t0), (i1, t1) = anchors[0], anchors[-1]
            rate = (t1 - t0) / (i1 - i0) if i1 > i0 and t1 - t0 >= 60 else SECONDS_PER_WORD
            anchors.append((n, t1 + rate * (n - i1)))
        out: list[float] = []
        k = 0
        for i in range(n + 1):
            while k + 1 < len(anchors) and anchors[k + 1][0] <= i:
                k += 1
            i0, t0 = anchors[k]
            if k + 1 < len(anchors):
                i1, t1 = anchors[k + 1]
                out.append(t0 + (t1 - t0) * (i - i0) / (i1 - i0))
            else:
                out.append(t0)
        return out

    def segments(self, duration_s: float | None) -> list[Segment]:
        times = self.times(duration_s)
        segments: list[Segment] = []
        i = 0
        for speaker, words in self.paragraphs:
            ws = tuple(
                Word(start_s=round(times[i + k], 3), end_s=round(times[i + k + 1], 3), text=w)
                for k, w in enumerate(words)
            )
            i += len(words)
            segments.append(
                Segment(start_s=ws[0].start_s, end_s=ws[-1].end_s, text=" ".join(words), speaker=speaker, words=ws)
            )
        return segments


_TIME_ONLY = re.compile(r"^" + _TIME + r"$")


def _stamp_seconds(stamp: str) -> float:
    m = _TIME_ONLY.match(stamp.strip())
    if m is None:
        raise ValueError(f"not a time: {stamp!r}")
    return _seconds(*m.groups())


# An inline time (`[07:56]`, escaped `\[07:56\]`, or inside a note: `[unintelligible 00:09:47.09]`) or a stage
# note (`[laughter]`): both are taken out of the text, the time kept as an anchor.
_INLINE_MARK = re.compile(
    r"\\?\[(?:[a-z][a-z ]*?\s)?(?P<t>(?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)\\?\]"
    r"|\\?\[[A-Za-z][^\]\[\\]{0,60}\\?\](?!\()"
)
_MD_SPEAKER = re.compile(r"\s*\*\*(?P<name>[^*\n]{1,80}?)(?::\*\*|\*\*\s*:)\s*")
_MD_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# Emphasis marks, not escaped ones: `\*bleep\*` (the Changelog's bleeped word) is a literal `*bleep*`.
_MD_EMPHASIS = re.compile(r"(?<![\w\\])[*_]{1,3}(?=\S)|(?<=[^\s\\])[*_]{1,3}(?!\w)")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}()#+\-.!])")


def _markdown_inline(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    text = _MD_EMPHASIS.sub("", text)
    return _MD_ESCAPE.sub(r"\1", text)


def _parse_markdown(text: str, duration_s: float | None) -> list[Segment]:
    """`**Speaker Name:** text` turns, continuation paragraphs without a name, sparse inline times. A turn
    with no words (`**Break**: [27:40]`, where the ads were cut) only contributes its time."""
    timeline = _Timeline()
    speaker: str | None = None
    for block in re.split(r"\n\s*\n", text):
        block = " ".join(block.split())
        if not block or block.startswith("#"):
            continue
        m = _MD_SPEAKER.match(block)
        if m:
            speaker = _markdown_inline(m.group("name")).strip() or None
            block = block[m.end() :]
        # Times and notes first: the escape `\[` must still be there for them to be recognised.
        marks = list(_INLINE_MARK.finditer(block))
        pieces, pos = [], 0
        for mark in marks:
            pieces.append(_markdown_inline(block[pos : mark.start()]))
            pieces.append(mark.group(0) if mark.group("t") else " ")
            pos = mark.end()
        pieces.append(_markdown_inline(block[pos:]))
        body = "".join(pieces)
        if not _INLINE_MARK.sub("", body).split():
            for mark in _INLINE_MARK.finditer(body):
                if mark.group("t"):
                    timeline.anchor(_stamp_seconds(mark.group("t")))
            if m and speaker and speaker.lower() in _MARKERS:
                speaker = None
            continue
        timeline.paragraph(speaker, body)
    return timeline.segments(duration_s)


# Turns that mark an edit rather than a voice.
_MARKERS = frozenset({"break", "ad break", "sponsor break", "music", "jingle"})


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
    """Block-level lines of an HTML page. A Podcasting 2.0 HTML transcript's `<cite>Name:</cite>` becomes a
    speaker line and its `<time>00:01:02</time>` a time line (marked with a leading NUL and S or T)."""

    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"})
    _SKIP = frozenset({"script", "style", "head", "title", "noscript"})
    _MARK: ClassVar[dict[str, str]] = {"cite": "\x00S", "time": "\x00T"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._MARK:
            self.parts.append("\n" + self._MARK[tag])
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK or tag in self._MARK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data.replace("\n", " "))


def _plain_lines(text: str) -> list[str]:
    return [line for line in (_SPACE.sub(" ", raw).strip() for raw in text.split("\n")) if line]


def _parse_lines(lines: list[str], duration_s: float | None) -> list[Segment]:
    """Untimed text lines (HTML blocks, plain text): speakers from `<cite>` marks or recurring `Name:` labels,
    times from `<time>` marks, else spread over the known duration by word count."""
    labels = _recurring_labels(line for line in lines if not line.startswith("\x00"))
    timeline = _Timeline()
    speaker: str | None = None
    for line in lines:
        if line.startswith("\x00S"):
            speaker = line[2:].strip().rstrip(":").strip() or speaker
            continue
        if line.startswith("\x00T"):
            stamp = line[2:].strip()
            if _TIME_ONLY.match(stamp):
                timeline.anchor(_stamp_seconds(stamp))
            continue
        label, rest = _label(line, labels)
        speaker = label or speaker
        if rest:
            timeline.paragraph(speaker, rest)
    return timeline.segments(duration_s)


def parse_publisher_transcript(
    body: bytes, mime: str, *, language: str | None = None, duration_s: float | None = None
) -> Transcript:
    """Parse a publisher transcript. `mime` picks the format; a generic or wrong type is sniffed from the
    content. Formats without (many) times get interpolated word times: between their own anchors, over
    `duration_s` when known, else all at 0."""
    text = _decode(body).replace("\r\n", "\n").replace("\r", "\n")
    kind = kind_of(mime) or _sniff(text)
    if kind in ("text", "html") and _sniff(text) in ("vtt", "srt", "markdown"):
        # Servers often label caption files text/plain; the timings and speakers are worth keeping.
        kind = _sniff(text)
    segments: list[Segment]
    if kind in ("vtt", "srt"):
        segments = _parse_cues(text)
    elif kind == "json":
        segments = _parse_json(text)
    elif kind == "markdown":
        segments = _parse_markdown(text, duration_s)
    elif kind == "html":
        parser = _TextOfHtml()
        parser.feed(text)
        parser.close()
        segments = _parse_lines(_plain_lines("".join(parser.parts)), duration_s)
    else:
        segments = _parse_lines(_plain_lines(text), duration_s)
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


def clean_transcript(t: Transcript) -> Transcript:
    """A transcript as podbrief stores and passes it on, whoever wrote it (a publisher, Whisper): every text one
    line of display text without markup, terminal escapes, control, bidi-control or invisible characters, and
    every field within the limits of the stages after it, so one long or hostile field never costs the episode.
    A speaker name is at most `SPEAKER_MAX` characters (an insight's speaker), a language tag at most
    `LANGUAGE_MAX` (longer ones are no language tag, and are dropped)."""
    segments: list[Segment] = []
    for seg in t.segments:
        text = _line(seg.text)
        if not text:
            continue
        words = tuple(w.model_copy(update={"text": _line(w.text)}) for w in seg.words if _line(w.text))
        speaker = single_line(_TAG.sub("", html.unescape(seg.speaker or "")), SPEAKER_MAX) or None
        segments.append(seg.model_copy(update={"text": text, "speaker": speaker, "words": words}))
    language = single_line(t.language or "") or None
    return t.model_copy(
        update={
            "text": " ".join(s.text for s in segments) if segments else _line(t.text),
            "segments": tuple(segments),
            "language": language if language and len(language) <= LANGUAGE_MAX else None,
            "model": single_line(t.model or "", MODEL_MAX) or None,
        }
    )


def _line(text: str) -> str:
    """Transcript text as one line of plain text (see `clean_transcript`)."""
    if "<" in text or "&" in text:
        text = _TAG.sub("", html.unescape(_TAG.sub("", text)))
    return single_line(text)


def to_vtt(t: Transcript) -> str:
    out = ["WEBVTT", ""]
    for i, seg in enumerate(_timed(t), 1):
        # Cue text is escaped (WebVTT has its own tags), and cleaned like stored text in case it never was.
        text = html.escape(_line(seg.text), quote=False)
        if seg.speaker:
            text = f"<v {html.escape(_line(seg.speaker), quote=False)}>{text}"
        out += [str(i), f"{_stamp(seg.start_s, '.')} --> {_stamp(seg.end_s, '.')}", text, ""]
    return "\n".join(out)


def to_srt(t: Transcript) -> str:
    out: list[str] = []
    for i, seg in enumerate(_timed(t), 1):
        # SRT has no escaping: what reads as a tag is dropped (players render <i>, <b>, <font>), and a line
        # break or an arrow could start a cue of its own.
        text = _line(seg.text).replace("-->", "->")
        if seg.speaker:
            text = f"{_line(seg.speaker).replace('-->', '->')}: {text}"
        out += [str(i), f"{_stamp(seg.start_s, ',')} --> {_stamp(seg.end_s, ',')}", text, ""]
    return "\n".join(out)


__all__ = ["PREFERENCE", "clean_transcript", "kind_of", "parse_publisher_transcript", "to_srt", "to_vtt"]
