"""Extraction end to end through the real client against a fake OpenAI server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from podbrief.errors import RetryableError
from podbrief.events import Segment, Transcript, insight_id
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.extractor import Extractor, answer_schema
from podbrief_extraction.settings import ChunkingSettings, ExtractionSettings, LLMSettings
from podbrief_testing.llm import FakeOpenAI

pytestmark = pytest.mark.unit

EP = uuid.UUID("00000000-0000-0000-0000-0000000000e1")

LINES = [
    "Home battery prices fell by half between 2020 and 2024 in Germany.",
    "We should all stop checking email before ten in the morning, it ruins focus.",
    "I think small language models will run on every phone by 2027.",
    "Our sponsor today is a mattress company, use the code BRIEF.",
]


def long_transcript(n: int = 40) -> Transcript:
    segs = tuple(
        Segment(start_s=i * 30.0, end_s=i * 30.0 + 29.0, text=LINES[i % len(LINES)] + f" Part {i}.") for i in range(n)
    )
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=n * 30.0, segments=segs)


def transcript_of(body: dict[str, Any]) -> str:
    prompt = FakeOpenAI.user_prompt(body)
    return prompt.split("Transcript:\n", 1)[1].rsplit("\n\n", 1)[0]


def good_answer(body: dict[str, Any]) -> str:
    """A model that quotes the first line of its window, plus a fabrication and a vague summary."""
    first = transcript_of(body).splitlines()[0]
    return json.dumps(
        {
            "insights": [
                {
                    "text": "Guest claim: " + first,
                    "quote": first,
                    "topics": ["Energy", "energy"],
                    "kind": "claim",
                    "importance": 4,
                },
                {
                    "text": "The moon landing was staged in a studio in Nevada.",
                    "quote": "the moon landing was staged in a studio",
                    "topics": [],
                    "kind": "claim",
                    "importance": 5,
                },
                {
                    "text": "They discussed batteries and phones.",
                    "quote": first,
                    "topics": [],
                    "kind": "story",
                    "importance": 2,
                },
            ]
        }
    )


def settings(**overrides: Any) -> ExtractionSettings:
    base: dict[str, Any] = {
        "llm": LLMSettings(base_url="http://llm.test/v1", model="fake-7b", max_retries=1),
        "chunking": ChunkingSettings(window_s=120, overlap_s=30, max_tokens=900),
    }
    base.update(overrides)
    return ExtractionSettings(**base)


def extractor(fake: FakeOpenAI, s: ExtractionSettings | None = None) -> Extractor:
    s = s or settings()
    return Extractor(LLMClient(s.llm, transport=fake.transport()), s)


async def test_gates_keep_grounded_specific_insights_with_transcript_times() -> None:
    fake = FakeOpenAI(responder=good_answer)
    ex = extractor(fake, settings(quality={"text_fallback": "drop", "quote_choices": False}))
    t = long_transcript()
    result = await ex.extract(t, episode_id=EP, show="Energy Hour", title="Batteries")
    assert result.chunks_total == len(fake.requests) > 5 and result.chunks_failed == 0
    assert result.dropped["ungrounded"] == result.chunks_total
    assert result.dropped["vague"] == result.chunks_total
    assert result.insights, "grounded insights survive"
    for ins in result.insights:
        seg = next(s for s in t.segments if ins.quote.split()[0] in s.text and s.start_s == ins.start_s)
        assert ins.end_s == seg.end_s  # from the segment, never from the model
        assert ins.insight_id == insight_id(EP, ins.quote, ins.start_s)
        assert ins.prompt_version == "insights_v1" and ins.model == "fake-7b"
        assert ins.topics == ("energy",) and ins.importance == 0.8
    # Overlapping windows quote the same passage: merged, not duplicated.
    assert len({i.insight_id for i in result.insights}) == len(result.insights)
    assert result.usage.requests == result.chunks_total
    # Prompts carry the show and title; the schema bounds every string and array.
    assert "Podcast: Energy Hour" in FakeOpenAI.user_prompt(fake.requests[0])
    schema = fake.requests[0]["response_format"]["json_schema"]["schema"]
    item = schema["properties"]["insights"]["items"]["properties"]
    assert schema["properties"]["insights"]["maxItems"] == 3
    assert all("maxLength" in item[k] for k in ("text", "quote")) and item["topics"]["maxItems"] == 3


async def test_invalid_chunk_fails_alone_and_the_episode_completes() -> None:
    calls = {"n": 0}

    def answer(body: dict[str, Any]) -> str:
        calls["n"] += 1
        if "Part 0." in transcript_of(body):
            return "I'm sorry, I cannot do that."  # first answer and repair both invalid
        return good_answer(body)

    fake = FakeOpenAI(responder=answer)
    result = await extractor(fake).extract(long_transcript(12), episode_id=EP, show="S", title="T")
    assert result.chunks_failed == 1 and result.chunks_total > 1
    assert result.insights


async def test_endpoint_down_raises_retryable() -> None:
    fake = FakeOpenAI(responder=lambda _b: httpx.ConnectError("refused"))
    with pytest.raises(RetryableError):
        await extractor(fake).extract(long_transcript(3), episode_id=EP, show="S", title="T")


async def test_empty_transcript_makes_no_requests() -> None:
    fake = FakeOpenAI()
    result = await extractor(fake).extract(Transcript(text="", duration_s=0), episode_id=EP, show="S", title="T")
    assert result.insights == [] and result.chunks_total == 0 and fake.requests == []


@pytest.mark.parametrize("policy,requests", [("skip", 0), ("process", 1)])
async def test_unsupported_language_policy(policy: str, requests: int) -> None:
    fake = FakeOpenAI(responder=good_answer)
    t = Transcript(text=LINES[0], language="de", duration_s=5, segments=(Segment(start_s=0, end_s=5, text=LINES[0]),))
    result = await extractor(fake, settings(unsupported_language=policy)).extract(t, episode_id=EP, show="S", title="T")
    assert len(fake.requests) == requests
    assert result.status == ("skipped" if policy == "skip" else "done")


async def test_episode_cap_keeps_the_most_important() -> None:
    def answer(body: dict[str, Any]) -> str:
        lines = transcript_of(body).splitlines()
        return json.dumps(
            {
                "insights": [
                    {
                        "text": "Claim: " + line,
                        "quote": line,
                        "topics": [],
                        "kind": "claim",
                        "importance": 5 if "language models" in line else 1,
                    }
                    for i, line in enumerate(lines[:5])
                ]
            }
        )

    fake = FakeOpenAI(responder=answer)
    s = settings(quality={"max_insights_per_episode": 2, "merge_similarity": 1.0})
    result = await extractor(fake, s).extract(long_transcript(16), episode_id=EP, show="S", title="T")
    assert len(result.insights) == 2
    assert all("language models" in i.quote for i in result.insights)
    assert result.dropped["episode_cap"] > 0


async def test_unusable_text_falls_back_to_the_grounded_quote() -> None:
    def answer(body: dict[str, Any]) -> str:
        first = transcript_of(body).splitlines()[0]
        return json.dumps(
            {
                "insights": [
                    {
                        "quote": first,
                        "text": "The guest predicts cheaper electric cars.",
                        "topics": ["electric cars", "battery"],
                        "kind": "prediction",
                        "importance": 5,
                    }
                ]
            }
        )

    fake = FakeOpenAI(responder=answer)
    result = await extractor(fake).extract(long_transcript(1), episode_id=EP, show="S", title="T")
    [ins] = result.insights
    assert ins.text == ins.quote == LINES[0] + " Part 0."
    assert ins.kind == "claim" and ins.topics == ("battery",) and ins.importance == 0.8
    assert result.text_from_quote == 1
    # With the fallback off, the same answer is dropped.
    fake = FakeOpenAI(responder=answer)
    off = await extractor(fake, settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    assert off.insights == [] and off.dropped["unsupported_text"] == 1


def test_schema_bounds_and_quote_choices() -> None:
    schema = answer_schema(3)
    assert schema["properties"]["insights"]["maxItems"] == 3
    from podbrief_extraction.chunking import Chunk
    from podbrief_extraction.extractor import quote_choices

    long = "word, " * 80 + "end."
    chunk = Chunk(
        0,
        (
            Segment(start_s=0, end_s=5, text="First point here. Second point there! Ok."),
            Segment(start_s=5, end_s=9, text=long),
        ),
    )
    choices = quote_choices(chunk)
    assert choices[:2] == ["First point here.", "Second point there!"]
    assert all(len(c) <= 300 for c in choices) and len(choices) > 2
    constrained = answer_schema(3, choices)["properties"]["insights"]["items"]["properties"]["quote"]
    assert constrained == {"type": "string", "enum": choices}
