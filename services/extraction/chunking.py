"""Transcript windows for the model: by time and by tokens, with overlap, cut at segment boundaries and at
chapter starts. Chunks are produced lazily, so a huge transcript costs one chunk of prompt at a time."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from podbrief.events import Chapter, Segment, Transcript, Word

# The prompt's instructions and the chat template, in tokens, on top of the transcript window.
PROMPT_OVERHEAD_TOKENS = 400


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate (~4 characters or ~0.75 words per token for English BPE vocabularies),
    deliberately on the high side so a window never overflows the context."""
    return max(math.ceil(len(text) / 3.6), math.ceil(len(text.split()) * 1.4))


def token_budget(max_tokens: int, context_tokens: int, answer_tokens: int) -> int:
    budget = min(max_tokens, context_tokens - answer_tokens - PROMPT_OVERHEAD_TOKENS)
    if budget < 64:
        raise ValueError(
            f"context of {context_tokens} tokens leaves no room for a transcript window after "
            f"{answer_tokens} answer tokens and the prompt"
        )
    return budget


@dataclass(frozen=True)
class Sentence:
    """One numbered unit of a chunk as the model sees it: a sentence (long ones cut at a comma or dash), with
    the transcript's own words, its speaker and its times (from word timestamps when there are any)."""

    number: int  # 1-based within its chunk: what the model answers with
    text: str
    speaker: str | None
    start_s: float
    end_s: float
    turn: int = 0  # index of its segment in the sequence it was split from


_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_SOFT_CUT = re.compile(r"(?:,|;|:|--|—|–)$")
MAX_SENTENCE_WORDS = 45
MIN_SENTENCE_WORDS = 4


def _word_runs(seg: Segment) -> list[tuple[str, float, float]]:
    if seg.words:
        return [(w.text.strip(), w.start_s, w.end_s) for w in seg.words if w.text.strip()]
    words = seg.text.split()
    span = max(0.0, seg.end_s - seg.start_s)
    total = max(1, sum(len(w) + 1 for w in words))
    out, pos = [], 0
    for w in words:
        # No word times: spread the segment's span over its characters.
        start = seg.start_s + span * pos / total
        pos += len(w) + 1
        out.append((w, start, seg.start_s + span * pos / total))
    return out


def split_sentences(segments: Sequence[Segment]) -> list[Sentence]:
    """The segments' sentences in order. A sentence longer than MAX_SENTENCE_WORDS is cut after a comma or dash
    (else hard); a fragment under MIN_SENTENCE_WORDS ("Yeah.") joins the next sentence of the same segment, so
    numbering costs fewer prompt tokens."""
    out: list[Sentence] = []
    for turn, seg in enumerate(segments):
        words = _word_runs(seg)
        runs: list[list[tuple[str, float, float]]] = [[]]
        for w in words:
            run = runs[-1]
            run.append(w)
            long = len(run) >= MAX_SENTENCE_WORDS
            if _SENTENCE_END.search(w[0]) and len(run) >= MIN_SENTENCE_WORDS:
                runs.append([])
            elif long:
                cut = next((k for k in range(len(run) - 1, len(run) // 3, -1) if _SOFT_CUT.search(run[k][0])), None)
                if cut is None:
                    runs.append([])
                else:
                    runs[-1], rest = run[: cut + 1], run[cut + 1 :]
                    runs.append(rest)
        for run in runs:
            if run:
                out.append(
                    Sentence(
                        number=len(out) + 1,
                        text=" ".join(w for w, _, _ in run),
                        speaker=seg.speaker,
                        start_s=run[0][1],
                        end_s=max(e for _, _, e in run),
                        turn=turn,
                    )
                )
    return out


@dataclass(frozen=True)
class Chunk:
    index: int
    segments: tuple[Segment, ...]
    chapter: str | None = None

    @property
    def start_s(self) -> float:
        return self.segments[0].start_s

    @property
    def end_s(self) -> float:
        return max(s.end_s for s in self.segments)

    @property
    def text(self) -> str:
        return "\n".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def prompt_text(self) -> str:
        """One line per segment, with the speaker's name when diarisation gave one."""
        return "\n".join(
            (f"{s.speaker}: " if s.speaker else "") + s.text.strip() for s in self.segments if s.text.strip()
        )

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)

    @functools.cached_property
    def sentences(self) -> tuple[Sentence, ...]:
        return tuple(split_sentences(self.segments))

    def numbered_text(self, shown: set[int] | None = None) -> str:
        """The chunk as the model reads it: a speaker line at each change of speaker, then numbered sentences.
        With `shown`, only those sentence numbers, a "…" line marking each gap."""
        lines: list[str] = []
        speaker: str | None = None
        gap = False
        for s in self.sentences:
            if shown is not None and s.number not in shown:
                gap = True
                continue
            if gap and lines:
                lines.append("…")
            gap = False
            if s.speaker != speaker and s.speaker:
                lines.append(f"{s.speaker}:")
            speaker = s.speaker
            lines.append(f"[{s.number}] {s.text}")
        return "\n".join(lines)


def _split_segment(seg: Segment, budget: int) -> list[Segment]:
    """A segment too large for one window (a publisher transcript without timing) is cut into word runs;
    their times come from the words when present, else are interpolated."""
    if estimate_tokens(seg.text) <= budget // 2:
        return [seg]
    if seg.words:
        per = max(1, int(budget // 2 / 1.4))
        out = []
        for i in range(0, len(seg.words), per):
            words: tuple[Word, ...] = seg.words[i : i + per]
            out.append(
                Segment(
                    start_s=words[0].start_s,
                    end_s=words[-1].end_s,
                    speaker=seg.speaker,
                    words=words,
                    text=" ".join(w.text.strip() for w in words if w.text.strip()),
                )
            )
        return out
    tokens = seg.text.split()
    per = max(1, int(budget // 2 / 1.4))
    span = max(0.0, seg.end_s - seg.start_s)
    out = []
    for i in range(0, len(tokens), per):
        a, b = i / len(tokens), min(len(tokens), i + per) / len(tokens)
        out.append(
            Segment(
                start_s=seg.start_s + a * span,
                end_s=seg.start_s + b * span,
                speaker=seg.speaker,
                text=" ".join(tokens[i : i + per]),
            )
        )
    return out


def _segments(transcript: Transcript, budget: int) -> Iterator[Segment]:
    segs: Sequence[Segment] = transcript.segments
    if not segs and transcript.text.strip():
        segs = (Segment(start_s=0.0, end_s=transcript.duration_s, text=transcript.text),)
    for seg in sorted(segs, key=lambda s: s.start_s):
        if seg.text.strip():
            yield from _split_segment(seg, budget)


def chunk_transcript(
    transcript: Transcript,
    *,
    window_s: float,
    max_tokens: int,
    overlap_s: float,
    chapters: Sequence[Chapter] = (),
    max_chunks: int = 10_000,
) -> Iterator[Chunk]:
    """Windows of at most `window_s` seconds and `max_tokens` estimated tokens. Consecutive windows share the
    segments of their last `overlap_s` seconds, except across a chapter start, which is always a cut."""
    segs = list(_segments(transcript, max_tokens))
    starts = sorted(c.start_s for c in chapters if c.start_s > 0)
    titles = sorted(((c.start_s, c.title) for c in chapters), key=lambda t: t[0])

    def chapter_at(t: float) -> str | None:
        title = None
        for s, name in titles:
            if s <= t + 1e-6:
                title = name
        return title

    def next_boundary(t: float) -> float:
        return next((s for s in starts if s > t + 1e-6), math.inf)

    i, index = 0, 0
    while i < len(segs) and index < max_chunks:
        first = segs[i]
        boundary = next_boundary(first.start_s)
        tokens = estimate_tokens(first.text)
        j = i + 1
        cut_at_chapter = False
        while j < len(segs):
            seg = segs[j]
            if seg.start_s >= boundary - 1e-6:
                cut_at_chapter = True
                break
            t = estimate_tokens(seg.text)
            if seg.end_s - first.start_s > window_s or tokens + t > max_tokens:
                break
            tokens += t
            j += 1
        chunk_segs = tuple(segs[i:j])
        yield Chunk(index, chunk_segs, chapter_at(first.start_s))
        index += 1
        if j >= len(segs) or cut_at_chapter or overlap_s <= 0:
            i = j
            continue
        # Step back over the segments that started within the overlap, keeping at least one new segment.
        end = max(s.end_s for s in chunk_segs)
        k = j
        while k - 1 > i + 0 and segs[k - 1].start_s >= end - overlap_s:
            k -= 1
        i = max(k, i + 1)
