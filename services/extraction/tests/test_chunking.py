"""Chunking: windows by time and tokens with overlap, cut at segment boundaries and chapter starts."""

from __future__ import annotations

import itertools

import pytest
from podbrief.events import Chapter, Segment, Transcript
from podbrief_extraction.chunking import chunk_transcript, estimate_tokens, token_budget

pytestmark = pytest.mark.unit


def transcript(n: int, seg_s: float = 10.0, words: int = 20) -> Transcript:
    segs = tuple(
        Segment(start_s=i * seg_s, end_s=(i + 1) * seg_s, text=" ".join(f"w{i}x{k}" for k in range(words)))
        for i in range(n)
    )
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=n * seg_s, segments=segs)


def test_windows_respect_time_and_overlap_at_segment_boundaries() -> None:
    t = transcript(30)
    chunks = list(chunk_transcript(t, window_s=60, max_tokens=10_000, overlap_s=15))
    for c in chunks:
        assert c.end_s - c.start_s <= 60
        assert all(s in t.segments for s in c.segments)  # whole segments only
    # Consecutive windows share the segments of their last 15 s, and together cover everything.
    for a, b in itertools.pairwise(chunks):
        assert b.start_s < a.end_s and b.start_s >= a.end_s - 15 - 10
    covered = {s for c in chunks for s in c.segments}
    assert covered == set(t.segments)
    assert chunks[-1].end_s == t.segments[-1].end_s


def test_windows_respect_the_token_budget() -> None:
    t = transcript(40, words=50)
    chunks = list(chunk_transcript(t, window_s=10_000, max_tokens=300, overlap_s=0))
    assert len(chunks) > 1
    assert all(c.tokens <= 300 for c in chunks)
    assert sum(len(c.segments) for c in chunks) == 40  # no overlap: each segment exactly once


def test_chapters_are_hard_boundaries_without_overlap() -> None:
    t = transcript(12)  # 0..120 s
    chapters = (Chapter(start_s=0, title="Intro"), Chapter(start_s=50, title="Batteries"))
    chunks = list(chunk_transcript(t, window_s=1000, max_tokens=100_000, overlap_s=20, chapters=chapters))
    assert [(c.start_s, c.end_s, c.chapter) for c in chunks] == [
        (0.0, 50.0, "Intro"),
        (50.0, 120.0, "Batteries"),
    ]


def test_huge_segment_without_timing_is_split_and_bounded() -> None:
    text = " ".join(f"word{i}" for i in range(5000))
    t = Transcript(text=text, duration_s=1000.0, segments=(Segment(start_s=0, end_s=1000, text=text),))
    chunks = list(chunk_transcript(t, window_s=1e9, max_tokens=400, overlap_s=0))
    assert len(chunks) > 10 and all(c.tokens <= 400 for c in chunks)
    assert chunks[0].start_s == 0 and chunks[-1].end_s == pytest.approx(1000)
    # Interpolated times increase monotonically.
    assert all(a.start_s < b.start_s for a, b in itertools.pairwise(chunks))
    bounded = list(chunk_transcript(t, window_s=1e9, max_tokens=400, overlap_s=0, max_chunks=3))
    assert len(bounded) == 3


def test_text_without_segments_and_empty_transcripts() -> None:
    t = Transcript(text="Solar panels halve the bill.", duration_s=5.0)
    [chunk] = chunk_transcript(t, window_s=60, max_tokens=500, overlap_s=5)
    assert chunk.text == "Solar panels halve the bill." and chunk.end_s == 5.0
    assert list(chunk_transcript(Transcript(text="", duration_s=0), window_s=60, max_tokens=500, overlap_s=5)) == []
    blank = Transcript(text=" ", duration_s=3, segments=(Segment(start_s=0, end_s=3, text="  "),))
    assert list(chunk_transcript(blank, window_s=60, max_tokens=500, overlap_s=5)) == []


def test_budget_is_sized_from_the_context() -> None:
    assert token_budget(900, 4096, 512) == 900
    assert token_budget(5000, 2048, 512) == 2048 - 512 - 400
    with pytest.raises(ValueError, match="no room"):
        token_budget(900, 600, 512)
    assert estimate_tokens("one two three four") >= 4
