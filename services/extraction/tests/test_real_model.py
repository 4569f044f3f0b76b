"""The real models on real speech (slow).

- The default model, Qwen2.5-Coder-1.5B-Instruct on the embedded llama-server, on two and a half minutes of a
  real Changelog episode imported from its Markdown transcript: what it keeps is grounded (the quote is the
  transcript's own words, with its time and named speaker) and synthesized (a text of its own, whose numbers
  and names are all in the passage).
- SmolLM2-135M (the tiny preset) on the JFK recording's Whisper words: the plumbing with a real model, and
  determinism.

A couple of minutes on 2 cores (the default model's first run also installs it: 1.1 GB from PyPI)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import pytest
from podbrief.events import Person, Segment, Transcript
from podbrief.transcripts import parse_publisher_transcript
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.eval.run import is_synthesis
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.grounding import norm_tokens
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import ExtractionSettings
from podbrief_extraction.verification import check_facts

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
EP = uuid.UUID("00000000-0000-0000-0000-00000000f00d")
# practical-ai-298: Alexandre Défossez describes Moshi (16:58-19:13 in the published audio).
EXCERPT = ("practical-ai-298.md", 1015.0, 1150.0)
PEOPLE = (
    Person(name="Daniel Whitenack", role="host"),
    Person(name="Chris Benson", role="host"),
    Person(name="Alexandre Défossez", role="guest"),
)


def excerpt(shared_dir: Path) -> Transcript:
    name, start, end = EXCERPT
    full = parse_publisher_transcript(
        (shared_dir / "data/transcripts/changelog" / name).read_bytes(), "text/markdown", language="en"
    )
    segs = tuple(s for s in full.segments if start <= s.start_s < end)
    return Transcript(
        text=" ".join(s.text for s in segs),
        language="en",
        duration_s=max(s.end_s for s in segs),
        segments=segs,
        source="publisher",
    )


async def test_default_model_writes_grounded_syntheses_of_real_speech(
    llama_server: EmbeddedLlamaServer, shared_dir: Path
) -> None:
    transcript = excerpt(shared_dir)
    assert 200 < len(transcript.text.split()) < 600
    s = ExtractionSettings()
    assert s.llm.model == "Qwen2.5-Coder-1.5B-Instruct"
    # As the service talks to its embedded server: the URL given to the client (no prompt cache, the writer
    # sampled with DRY).
    async with LLMClient(s.llm, base_url=llama_server.base_url) as llm:
        assert llm.cache_prompt is False and llm.dry_multiplier
        started = time.perf_counter()
        result = await Extractor(llm, s).extract(
            transcript,
            episode_id=EP,
            show="Practical AI",
            title="Moshi: real-time, full-duplex speech AI from Kyutai",
            people=PEOPLE,
        )
        elapsed = time.perf_counter() - started
    log.info(
        "real excerpt, default model",
        extra={
            "elapsed_s": round(elapsed, 1),
            "tokens_in": result.usage.prompt_tokens,
            "tokens_out": result.usage.completion_tokens,
            "stages": {k: (u.prompt_tokens, u.completion_tokens) for k, u in result.stages.items()},
            "dropped": dict(result.dropped),
            "decisions": [d.__dict__ for d in result.decisions],
        },
    )
    assert result.chunks_total == 1 and result.chunks_failed == 0
    assert result.insights, f"nothing kept: {[(d.outcome, d.text, d.reason) for d in result.decisions]}"
    words = " ".join(norm_tokens(transcript.text))
    context = " ".join([transcript.text, "Practical AI Moshi Kyutai", *(p.name for p in PEOPLE)])
    for ins in result.insights:
        # Grounded: the transcript's own words, its time and its named speaker.
        assert " ".join(norm_tokens(ins.quote)) in words, ins.quote
        # (Times are kept to the centisecond: an end rounded up passes the transcript's by at most 5 ms.)
        assert EXCERPT[1] <= ins.start_s < ins.end_s <= transcript.duration_s + 0.005
        assert ins.speaker == "Alexandre Défossez"
        # Synthesized, and true to the passage in every number and name.
        assert is_synthesis(ins.text, ins.quote), ins.text
        assert check_facts(ins.text, context).ok, ins.text
        assert ins.prompt_version == "insights_v6" and ins.model == "Qwen2.5-Coder-1.5B-Instruct"
    # The server answered the rate call with log-probabilities: graded ratings, not the text's 0, 0.5 or 1.
    ratings = [d.rating for d in result.decisions if d.rating is not None]
    assert ratings and any(r not in (0.0, 0.5, 1.0) for r in ratings), ratings


def jfk_transcript() -> Transcript:
    words = tuple(Segment.model_validate(s) for s in json.loads((DATA / "jfk_whisper_words.json").read_text()))
    return Transcript(text="".join(s.text for s in words), language="en", duration_s=11.0, segments=words)


async def test_tiny_model_keeps_a_grounded_insight_with_word_times(tiny_llama_server: EmbeddedLlamaServer) -> None:
    transcript = jfk_transcript()
    s = ExtractionSettings(model_preset="tiny")
    # As the service runs it: the system prompts pinned in a slot, the prompt cache on.
    async with LLMClient(s.llm, base_url=tiny_llama_server.base_url, pin_prefix=True) as llm:
        ex = Extractor(llm, s)
        a = await ex.extract(transcript, episode_id=EP, show="Presidential Speeches", title="Inaugural address, 1961")
        b = await ex.extract(transcript, episode_id=EP, show="Presidential Speeches", title="Inaugural address, 1961")
    assert a.chunks_total == 1 and a.chunks_failed == 0
    assert a.insights, f"nothing kept: {dict(a.dropped)}"
    words = {w.start_s for seg in transcript.segments for w in seg.words}
    for ins in a.insights:
        assert " ".join(norm_tokens(ins.quote)) in " ".join(norm_tokens(transcript.text))
        assert ins.start_s in words  # the time of the quote's first word, never the model's
    # The same input gives the same insights (temperature 0, fixed seed, ids keyed on the quote), although the
    # second run's requests are identical to the first's and meet a warm prompt cache.
    assert [(i.insight_id, i.text) for i in a.insights] == [(i.insight_id, i.text) for i in b.insights]
    assert b.usage.cached_tokens > 0
