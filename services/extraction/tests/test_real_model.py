"""The real small model (SmolLM2-135M-Instruct on llama-server, CPU) on real transcripts of
../shared/data/audio.

The transcripts are what Whisper tiny.en gives for those files (the JFK words were recorded from a
faster-whisper run; the LibriVox clips use their reference texts at their real durations)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import pytest
from podbrief.events import Segment, Transcript
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.grounding import ground, norm_tokens, tokens_of
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import ExtractionSettings, LLMSettings

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
JFK_DURATION_S = 11.0
EP = uuid.UUID("00000000-0000-0000-0000-00000000f00d")


def jfk_transcripts(shared_dir: Path) -> dict[str, Transcript]:
    assert (shared_dir / "data/audio/jfk.flac").is_file()
    words = tuple(Segment.model_validate(s) for s in json.loads((DATA / "jfk_whisper_words.json").read_text()))
    return {
        "reference": Transcript(
            text=JFK_TEXT,
            language="en",
            duration_s=JFK_DURATION_S,
            segments=(Segment(start_s=0.0, end_s=10.5, text=" " + JFK_TEXT),),
        ),
        "whisper_words": Transcript(
            text="".join(s.text for s in words), language="en", duration_s=JFK_DURATION_S, segments=words
        ),
    }


def librivox_transcript(shared_dir: Path) -> Transcript:
    import av

    segs, t = [], 0.0
    for txt in sorted((shared_dir / "data/audio/librivox").glob("*.txt")):
        with av.open(str(txt.with_suffix(".wav"))) as container:
            duration = float(container.duration or 0) / 1e6
        segs.append(Segment(start_s=round(t, 2), end_s=round(t + duration, 2), text=txt.read_text().strip()))
        t += duration
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=round(t, 2), segments=tuple(segs))


def settings_for(server: EmbeddedLlamaServer) -> ExtractionSettings:
    return ExtractionSettings(llm=LLMSettings(base_url=server.base_url, model="SmolLM2-135M-Instruct"))


def assert_grounded(transcript: Transcript, quote: str, start_s: float, end_s: float) -> None:
    match = ground(quote, tokens_of(transcript.segments))
    assert match is not None and match.score == 1.0, quote  # the stored quote is the transcript's own words
    joined = " ".join(norm_tokens(transcript.text))
    assert " ".join(norm_tokens(quote)) in joined
    assert 0.0 <= start_s < end_s <= transcript.duration_s


@pytest.mark.parametrize("variant", ["reference", "whisper_words"])
async def test_jfk_speech_yields_a_grounded_insight(
    llama_server: EmbeddedLlamaServer, shared_dir: Path, variant: str
) -> None:
    transcript = jfk_transcripts(shared_dir)[variant]
    s = settings_for(llama_server)
    async with LLMClient(s.llm) as llm:
        started = time.perf_counter()
        result = await Extractor(llm, s).extract(
            transcript, episode_id=EP, show="Presidential Speeches", title="Inaugural address, 1961"
        )
        elapsed = time.perf_counter() - started
    assert result.chunks_total == 1 and result.chunks_failed == 0
    assert result.insights, f"no insight survived the gates: dropped {dict(result.dropped)}"
    for ins in result.insights:
        assert_grounded(transcript, ins.quote, ins.start_s, ins.end_s)
        assert ins.prompt_version == "insights_v1" and ins.model == "SmolLM2-135M-Instruct"
    # Timestamps come from the words or the segment, never from the model.
    if variant == "whisper_words":
        assert {i.start_s for i in result.insights} <= {w.start_s for s in transcript.segments for w in s.words}
    else:
        assert all((i.start_s, i.end_s) == (0.0, 10.5) for i in result.insights)
    log.info(
        "jfk extraction",
        extra={
            "variant": variant,
            "elapsed_s": round(elapsed, 1),
            "tokens_in": result.usage.prompt_tokens,
            "tokens_out": result.usage.completion_tokens,
            "dropped": dict(result.dropped),
            "insights": [i.model_dump(mode="json") for i in result.insights],
        },
    )


async def test_same_input_same_insight_ids(llama_server: EmbeddedLlamaServer, shared_dir: Path) -> None:
    transcript = jfk_transcripts(shared_dir)["reference"]
    s = settings_for(llama_server)
    async with LLMClient(s.llm) as llm:
        ex = Extractor(llm, s)
        a = await ex.extract(transcript, episode_id=EP, show="Presidential Speeches", title="Inaugural address")
        b = await ex.extract(transcript, episode_id=EP, show="Presidential Speeches", title="Inaugural address")
    assert [i.insight_id for i in a.insights] == [i.insight_id for i in b.insights]


async def test_librivox_passage_completes_and_everything_kept_is_grounded(
    llama_server: EmbeddedLlamaServer, shared_dir: Path
) -> None:
    transcript = librivox_transcript(shared_dir)
    assert len(transcript.segments) == 5 and 24 < transcript.duration_s < 25.5
    s = settings_for(llama_server)
    async with LLMClient(s.llm) as llm:
        result = await Extractor(llm, s).extract(
            transcript, episode_id=EP, show="LibriVox", title="Sense and Sensibility, chapter 1"
        )
    assert result.chunks_total == 1 and result.chunks_failed == 0
    for ins in result.insights:
        assert_grounded(transcript, ins.quote, ins.start_s, ins.end_s)
    log.info(
        "librivox extraction",
        extra={
            "dropped": dict(result.dropped),
            "insights": [i.model_dump(mode="json") for i in result.insights],
        },
    )
