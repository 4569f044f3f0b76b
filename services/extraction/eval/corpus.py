"""The labelled evaluation episodes: real Changelog transcripts imported like a publisher transcript, with a
sponsor read put back where each ad break was cut, and the labels' evidence located in the imported text.

Everything is located by normalised tokens (the grounding module's `norm_tokens`), so a label matches an
insight when their spans overlap in the same token sequence; no judgement is involved."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbrief.events import Person, Transcript
from podbrief.transcripts import parse_publisher_transcript
from podbrief_extraction.grounding import ground, norm_tokens, tokens_of

EVAL_DIR = Path(__file__).parent
LABELS = EVAL_DIR / "changelog_labels.json"
SPONSOR_READS = EVAL_DIR / "sponsor_reads.json"
# A second reader's top points of the same episodes (LABELLING.md): how far two careful readers agree.
SECOND_READER = EVAL_DIR / "second_reader.json"
# Where the shared transcripts are, seen from the repository root (tests and make targets run there).
TRANSCRIPTS = Path("../shared/data/transcripts/changelog")

Span = tuple[int, int]  # token interval [start, end)


class CorpusError(ValueError):
    """The labelled set is inconsistent with the transcripts (a label's evidence is not in its episode)."""


@dataclass(frozen=True)
class Label:
    id: str
    claim: str
    spans: tuple[Span, ...]


@dataclass
class Episode:
    file: str
    show: str
    title: str
    split: str
    people: tuple[Person, ...]
    transcript: Transcript
    labels: list[Label]
    ads: list[Span]
    # The second reader's points, most important first: each one's best-stating evidence span, the one quote a
    # kept insight would have (an empty list where the reader's file has no entry for the episode).
    reader: list[Span] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    _index: TokenIndex | None = None

    @property
    def index(self) -> TokenIndex:
        if self._index is None:
            self._index = TokenIndex(self.tokens)
        return self._index

    def locate(self, text: str) -> Span | None:
        """The token span of a verbatim passage of this episode; a near-verbatim one is found fuzzily."""
        span = self.index.find(norm_tokens(text))
        if span is not None:
            return span
        match = ground(text, tokens_of(self.transcript.segments))
        if match is None or match.score < 0.8:
            return None
        return self.index.find(norm_tokens(match.quote))


class TokenIndex:
    """Exact search of a token sequence in the episode's token sequence."""

    def __init__(self, tokens: list[str]) -> None:
        self.text = " " + " ".join(tokens) + " "
        self.starts: list[int] = []
        pos = 1
        for t in tokens:
            self.starts.append(pos)
            pos += len(t) + 1

    def find(self, tokens: list[str]) -> Span | None:
        if not tokens:
            return None
        at = self.text.find(" " + " ".join(tokens) + " ")
        if at < 0:
            return None
        import bisect

        start = bisect.bisect_left(self.starts, at + 1)
        return start, start + len(tokens)


_BREAK = re.compile(r"^\*\*(?:Break|Ad break|Sponsor break)\*\*\s*:?", re.IGNORECASE)


def insert_sponsor_reads(markdown: str, host: str, reads: list[str], first: int = 0) -> tuple[str, list[str]]:
    """Put a sponsor read, spoken by `host`, after every ad-break marker (or, with none, at the paragraph nearest
    the middle). Returns the new Markdown and the reads used, in order."""
    paragraphs = markdown.split("\n\n")
    used: list[str] = []
    out: list[str] = []
    for p in paragraphs:
        out.append(p)
        if _BREAK.match(p.strip()):
            read = reads[(first + len(used)) % len(reads)]
            used.append(read)
            out.append(f"**{host}:** {read}")
    if not used:
        half = sum(len(p) for p in paragraphs) / 2
        total, cut = 0, len(paragraphs) // 2
        for i, p in enumerate(paragraphs):
            total += len(p)
            if total >= half and p.lstrip().startswith("**") is False and i + 1 < len(paragraphs):
                cut = i + 1
                break
        read = reads[first % len(reads)]
        used.append(read)
        out = [*paragraphs[:cut], f"**{host}:** {read}", *paragraphs[cut:]]
    return "\n\n".join(out), used


def load(
    split: str | None = None,
    *,
    transcripts: Path = TRANSCRIPTS,
    labels_file: Path = LABELS,
    reader_file: Path = SECOND_READER,
    max_minutes: float | None = None,
    only: set[str] | None = None,
) -> list[Episode]:
    """The labelled episodes of `split` ("dev", "heldout" or None for all). `max_minutes` keeps only the start
    of each episode, with the labels (and second-reader points) whose evidence lies inside it (for quick
    development runs)."""
    data = json.loads(labels_file.read_text(encoding="utf-8"))
    reads: dict[str, list[str]] = json.loads(SPONSOR_READS.read_text(encoding="utf-8"))
    second: dict[str, list[dict[str, Any]]] = {}
    if reader_file.is_file():
        second = {e["file"]: e["insights"] for e in json.loads(reader_file.read_text(encoding="utf-8"))["episodes"]}
    episodes: list[Episode] = []
    for n, entry in enumerate(data["episodes"]):
        if split is not None and entry["split"] != split:
            continue
        if only and entry["file"] not in only and Path(entry["file"]).stem not in only:
            continue
        ep = _episode(entry, transcripts, reads[entry["split"]], n, max_minutes)
        for point in second.get(entry["file"], []):
            span = _evidence(ep, point["evidence"][0], f"second reader's {point['id']}", max_minutes)
            if span is not None:
                ep.reader.append(span)
        episodes.append(ep)
    return episodes


def _episode(entry: dict[str, Any], transcripts: Path, reads: list[str], n: int, max_minutes: float | None) -> Episode:
    path = transcripts / entry["file"]
    if not path.is_file():
        raise CorpusError(f"transcript {path} not found (run from the repository root, with ../shared present)")
    people = tuple(Person.model_validate(p) for p in entry.get("people", []))
    host = next((p.name for p in people if (p.role or "") == "host"), people[0].name if people else "Host")
    markdown, used = insert_sponsor_reads(path.read_text(encoding="utf-8"), host, reads, first=n)
    transcript = parse_publisher_transcript(markdown.encode("utf-8"), "text/markdown", language="en")
    if max_minutes is not None:
        limit = max_minutes * 60
        segs = tuple(s for s in transcript.segments if s.start_s < limit)
        transcript = transcript.model_copy(
            update={
                "segments": segs,
                "text": " ".join(s.text for s in segs),
                "duration_s": min(transcript.duration_s, max(s.end_s for s in segs)),
            }
        )
    tokens = [t for s in transcript.segments for t in norm_tokens(s.text)]
    ep = Episode(
        file=entry["file"],
        show=entry["show"],
        title=entry["title"],
        split=entry["split"],
        people=people,
        transcript=transcript,
        labels=[],
        ads=[],
        tokens=tokens,
    )
    for read in used:
        span = ep.index.find(norm_tokens(read))
        if span is not None:
            ep.ads.append(span)
        elif max_minutes is None:
            raise CorpusError(f"{entry['file']}: the inserted sponsor read was not found after import")
    for label in entry["insights"]:
        found = [_evidence(ep, text, f"label {label['id']}", max_minutes) for text in label["evidence"]]
        spans = tuple(span for span in found if span is not None)
        if spans:
            ep.labels.append(Label(label["id"], label["claim"], spans))
    return ep


def _evidence(ep: Episode, text: str, what: str, max_minutes: float | None) -> Span | None:
    """The span of a verbatim evidence text in the episode. Not found, it is an error of the labelled set,
    except in a run cut at `max_minutes`, where evidence beyond the cut is left out (None)."""
    span = ep.index.find(norm_tokens(text))
    if span is None and max_minutes is None:
        raise CorpusError(f"{ep.file} {what}: evidence not in the transcript: {text!r}")
    return span


def overlaps(a: Span, b: Span) -> bool:
    """Two spans are the same passage when they share at least min(8, half the shorter span) tokens."""
    shared = min(a[1], b[1]) - max(a[0], b[0])
    shorter = min(a[1] - a[0], b[1] - b[0])
    return shared > 0 and shared >= min(8, max(1, shorter // 2))
