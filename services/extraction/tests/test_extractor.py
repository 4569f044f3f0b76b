"""Extraction end to end through the real client against a fake OpenAI server: select, the episode-level pass,
write, verify, and what the gates keep."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from podbrief.errors import RetryableError
from podbrief.events import Person, Segment, Transcript, insight_id
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.extractor import ExtractionResult, Extractor
from podbrief_extraction.grounding import copied, norm_tokens
from podbrief_extraction.settings import ChunkingSettings, ExtractionSettings, LLMSettings
from podbrief_testing.llm import FakeOpenAI, ScriptedModel, marked_sentences, said, speaker_of, stage_of

pytestmark = pytest.mark.unit

EP = uuid.UUID("00000000-0000-0000-0000-0000000000e1")

LINES = [
    "Home battery prices fell by half between 2020 and 2024 in Germany.",
    "We should all stop checking email before ten in the morning, it ruins focus.",
    "I think small language models will run on every phone by 2027.",
    "Nuclear fusion startups raised four billion dollars last year from private investors.",
]
SPONSOR = "This episode is brought to you by Acme Mattress, use the code BRIEF for 20% off at acme.com/brief."


def long_transcript(n: int = 40, speaker: str | None = "Dana Whitfield") -> Transcript:
    segs = tuple(
        Segment(
            start_s=i * 30.0,
            end_s=i * 30.0 + 29.0,
            text=LINES[i % len(LINES)] + f" That was part {i} of the talk.",
            speaker=speaker,
        )
        for i in range(n)
    )
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=n * 30.0, segments=segs)


def settings(*, pick: bool = False, **overrides: Any) -> ExtractionSettings:
    """Settings for the fake model: the model picks the candidates (prompt v4), in the three-stage path (select,
    write, verify) unless `pick` (select and write in one call)."""
    base: dict[str, Any] = {
        "llm": LLMSettings(base_url="http://llm.test/v1", model="fake-7b", max_retries=1),
        "chunking": ChunkingSettings(window_s=120, overlap_s=30, max_tokens=900),
    }
    base.update(overrides)
    base.setdefault("prompt_version", "v4")
    quality = dict(base.get("quality") or {})
    quality.setdefault("write_in_select", pick)
    quality.setdefault("candidates", "model")
    base["quality"] = quality
    return ExtractionSettings(**base)


def extractor(fake: FakeOpenAI, s: ExtractionSettings | None = None) -> Extractor:
    s = s or settings()
    return Extractor(LLMClient(s.llm, transport=fake.transport()), s)


async def test_select_write_verify_keeps_a_grounded_synthesis_with_transcript_times() -> None:
    model = ScriptedModel()
    fake = FakeOpenAI(responder=model)
    t = long_transcript(12)
    result = await extractor(fake).extract(t, episode_id=EP, show="Energy Hour", title="Batteries")
    assert result.chunks_total == len(model.calls["select"]) > 2 and result.chunks_failed == 0
    assert result.insights and len(model.calls["write"]) == len(model.calls["verify"])
    for ins in result.insights:
        seg = next(s for s in t.segments if s.text.startswith(ins.quote))
        # The quote is the transcript's own sentence and the time comes from it, never from the model.
        assert ins.start_s == seg.start_s and ins.end_s <= seg.end_s
        assert ins.text == f"Dana Whitfield says that {ins.quote}" and ins.speaker == "Dana Whitfield"
        assert ins.insight_id == insight_id(EP, ins.quote, ins.start_s)
        assert ins.prompt_version == "insights_v4" and ins.model == "fake-7b" and ins.topics == ("testing",)
    # Overlapping windows pick the same sentence: merged, not duplicated.
    assert len({i.quote for i in result.insights}) == len(result.insights)
    assert result.usage.requests == sum(len(c) for c in model.calls.values())
    assert {k for k, u in result.stages.items() if u.requests} == {"select", "write", "verify"}
    # The select prompt numbers the sentences; its schema bounds every number and string.
    body = model.calls["select"][0]
    assert "Podcast: Energy Hour" in FakeOpenAI.user_prompt(body) and "[1] " in FakeOpenAI.user_prompt(body)
    schema = body["response_format"]["json_schema"]["schema"]
    point = schema["properties"]["p"]["items"]["properties"]
    assert schema["properties"]["p"]["maxItems"] == 3 and point["s"]["maximum"] >= 1 and "maxLength" in point["h"]


def writer(first: Callable[[str], str], dry: Callable[[str], str]) -> Callable[[list[str], dict[str, Any]], str]:
    """A write rule for `ScriptedModel`: the text `first(quote)` makes of the marked quote, or with DRY on,
    `dry(quote)`."""
    return lambda quote, body: (dry if "dry_multiplier" in body else first)(" ".join(quote))


async def extract_with_dry(write: Callable[[list[str], dict[str, Any]], str]) -> tuple[ScriptedModel, ExtractionResult]:
    """A long transcript extracted by a writer that answers with `write`, DRY configured (here for an endpoint; on
    by default for the embedded server)."""
    model = ScriptedModel(write=write)
    llm = LLMSettings(base_url="http://llm.test/v1", model="fake-7b", max_retries=1, dry_multiplier=0.8)
    result = await extractor(FakeOpenAI(responder=model), settings(llm=llm)).extract(
        long_transcript(12), episode_id=EP, show="S", title="T"
    )
    return model, result


async def test_a_text_that_copies_its_quote_is_written_again_with_dry() -> None:
    # DRY goes with a second write call when the first copied its quote ("Dana Whitfield says that" and the
    # quote's own sentence); the select and verify answers may repeat their prompt's words (sentence numbers, a
    # verdict's reason).
    write = writer(
        lambda said: f"Dana Whitfield says that {said}", lambda said: f"Dana Whitfield says that {restated(said)}"
    )
    model, result = await extract_with_dry(write)
    writes = model.calls["write"]
    assert writes and len(writes) == 2 * sum(1 for b in writes if "dry_multiplier" in b)
    assert not any("dry_multiplier" in b for stage in ("select", "verify") for b in model.calls[stage])
    assert result.insights and all(not copied(i.text, i.quote) for i in result.insights)
    assert result.rewrites == len(writes) // 2
    # Without DRY (an endpoint, by default) a copy is not asked again: the same request would answer the same.
    model = ScriptedModel(write=write)
    result = await extractor(FakeOpenAI(responder=model)).extract(
        long_transcript(12), episode_id=EP, show="S", title="T"
    )
    assert model.calls["write"] and not any("dry_multiplier" in b for b in model.calls["write"])
    assert result.insights and all(copied(i.text, i.quote) for i in result.insights)


async def test_a_restatement_that_still_copies_leaves_the_first_text() -> None:
    _, result = await extract_with_dry(
        writer(lambda said: f"Dana Whitfield says {said}", lambda said: f"Dana Whitfield says that {said}")
    )
    assert result.insights and all(
        i.text.startswith("Dana Whitfield says ") and "says that" not in i.text for i in result.insights
    )


async def test_a_restatement_that_gets_a_fact_wrong_leaves_the_copy_that_passes() -> None:
    # The copy is true; the restatement adds a year the passage never says, which the facts check refuses.
    model, result = await extract_with_dry(
        writer(
            lambda said: f"Dana Whitfield says that {said}",
            lambda said: f"Dana Whitfield says that in 2099 {restated(said)}",
        )
    )
    assert any("dry_multiplier" in b for b in model.calls["write"]), "the copy was written again"
    assert result.insights and all(i.text == f"Dana Whitfield says that {i.quote}" for i in result.insights)


async def test_a_text_cut_off_at_the_length_bound_is_written_again_with_dry() -> None:
    # A long copy runs into the schema's length bound and stops mid-sentence: no complete sentence to keep. The
    # restatement is shorter and complete.
    _, result = await extract_with_dry(
        writer(
            lambda said: f"Dana Whitfield says {said[:30]}", lambda said: f"Dana Whitfield says that {restated(said)}"
        )
    )
    assert result.insights and all(i.text == f"Dana Whitfield says that {restated(i.quote)}" for i in result.insights)
    assert result.dropped["truncated"] == 0


def restated(quote: str) -> str:
    """The fake writer's restatement: the quote without every fifth word, so no long run of it is copied."""
    return " ".join(w for i, w in enumerate(quote.split()) if i % 5 != 4)


async def test_pick_writes_each_insight_in_the_chunks_call_and_verifies_it_on_a_small_window() -> None:
    model = ScriptedModel(write=lambda q, b: f"{speaker_of(b, q[0] if q else None)} says that {restated(' '.join(q))}")
    t = long_transcript(12)
    people = (Person(name="Dana Whitfield", role="guest"),)
    result = await extractor(FakeOpenAI(responder=model), settings(pick=True)).extract(
        t, episode_id=EP, show="Energy Hour", title="Batteries", people=people
    )
    assert result.chunks_total == len(model.calls["select"]) > 2 and result.chunks_failed == 0
    assert result.insights and model.calls.get("write", []) == [], "the chunk's call wrote the insights"
    assert len(model.calls["verify"]) == len(result.decisions) - result.dropped["duplicate"]
    for ins in result.insights:
        assert ins.text == f"Dana Whitfield says that {restated(ins.quote)}" and ins.speaker == "Dana Whitfield"
        assert ins.topics == ("testing",) and ins.prompt_version == "insights_v4"
    pick = model.calls["select"][0]
    assert "People: Dana Whitfield (guest)" in FakeOpenAI.user_prompt(pick)
    point = pick["response_format"]["json_schema"]["schema"]["properties"]["p"]["items"]["properties"]
    assert point["t"]["maxLength"] == 360 and point["tp"]["maxItems"] == 2
    # The verifier reads the quote and one sentence either side, not the chunk.
    for body in model.calls["verify"]:
        passage = FakeOpenAI.user_prompt(body).split("Passage:\n", 1)[1].split("\n\nSummary:", 1)[0]
        sentences = [line for line in passage.splitlines() if not line.endswith(":")]
        assert 1 <= len(sentences) <= 3, passage


@pytest.mark.parametrize(
    ("picked", "rewritten"),
    [
        # A topic instead of a claim.
        (
            "Dana Whitfield discusses home batteries and energy storage for households in Germany today.",
            "Dana Whitfield says home battery prices fell by half between 2020 and 2024 in Germany.",
        ),
        # The quote copied out instead of restated.
        (
            "Dana Whitfield says home battery prices fell by half between 2020 and 2024 in Germany.",
            "Dana Whitfield says home batteries in Germany cost half in 2024 what they did in 2020, so storage pays.",
        ),
    ],
)
async def test_a_picked_topic_or_copy_gets_one_write_call_of_its_own(picked: str, rewritten: str) -> None:
    model = ScriptedModel(write=lambda _q, b: picked if stage_of(b) == "select" else rewritten)
    result = await extractor(FakeOpenAI(responder=model), settings(pick=True)).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    [ins] = result.insights
    assert ins.text == rewritten and result.rewrites == 1 and len(model.calls["write"]) == 1


async def test_system_prompts_are_a_stable_prefix_per_stage() -> None:
    """The server's prompt cache keeps a stage's system prompt between calls only if it never changes."""
    model = ScriptedModel()
    await extractor(FakeOpenAI(responder=model)).extract(long_transcript(12), episode_id=EP, show="S", title="T")
    for stage, calls in model.calls.items():
        if not calls:
            continue
        systems = {c["messages"][0]["content"] for c in calls}
        assert len(systems) == 1, stage
        assert calls[0]["messages"][0]["role"] == "system"


@pytest.mark.parametrize(
    ("verdict", "kept"),
    [("supported", True), ("partly", False), ("unsupported", False)],
)
async def test_the_verifiers_decision_is_final(verdict: str, kept: bool) -> None:
    model = ScriptedModel(verify=lambda _s, _b: (verdict, "checked against the passage"))
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    assert bool(result.insights) is kept
    assert result.verdicts[verdict] == 1
    if not kept:
        assert result.dropped[f"verdict_{verdict}"] == 1
        [decision] = [d for d in result.decisions if d.outcome.startswith("verdict")]
        assert decision.reason == "checked against the passage" and decision.verdict == verdict


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            "Dana Whitfield says home battery prices fell by 70% between 2020 and 2024 in Germany.",
            "unsupported_number",
        ),
        (
            "Dana Whitfield says home battery prices fell by half between 2019 and 2024 in Germany.",
            "unsupported_number",
        ),
        ("Dana Whitfield of Tesla says home battery prices fell by half between 2020 and 2024.", "unsupported_name"),
    ],
)
async def test_numbers_and_names_not_in_the_passage_are_refused_without_asking_the_verifier(
    text: str, reason: str
) -> None:
    model = ScriptedModel(write=lambda _q, _b: text)
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    assert result.insights == [] and result.dropped[reason] == 1
    assert model.calls["verify"] == [], "a text the code refuses costs no verification call"


async def test_a_paraphrase_with_spelled_out_numbers_and_the_feeds_people_passes() -> None:
    t = Transcript(
        text="x",
        language="en",
        duration_s=30,
        segments=(
            Segment(
                start_s=0, end_s=30, text="The price of running a model fell by ninety percent in eighteen months."
            ),
        ),
    )
    text = "Tom Brady of The Margin Call says the cost of running a language model dropped 90% in 18 months."
    model = ScriptedModel(write=lambda _q, _b: text)
    people = (Person(name="Tom Brady", role="guest", group="cast"),)
    result = await extractor(FakeOpenAI(responder=model)).extract(
        t, episode_id=EP, show="The Margin Call", title="Cheaper models", people=people
    )
    [ins] = result.insights
    assert ins.text == text and ins.speaker == "Tom Brady"  # the feed's only person speaks an unlabelled transcript
    assert "People: Tom Brady (guest)" in FakeOpenAI.user_prompt(model.calls["write"][0])


def _retried(body: dict[str, Any]) -> bool:
    return sum(1 for m in body["messages"] if m["role"] == "user") > 1


async def test_a_topic_instead_of_a_claim_is_asked_for_once_more_and_the_claim_kept() -> None:
    claim = "Dana Whitfield says home battery prices fell by half between 2020 and 2024 in Germany."
    topic = "Dana Whitfield discusses home batteries and energy storage for households in Germany today."
    model = ScriptedModel(write=lambda _q, b: claim if _retried(b) else topic)
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    [ins] = result.insights
    assert ins.text == claim and result.rewrites == 1
    retry = model.calls["write"][1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "discusses home batteries" in retry[2]["content"] and "states no claim" in retry[3]["content"]
    assert len(model.calls["verify"]) == 1


async def test_a_writer_that_only_names_topics_is_refused_after_one_retry() -> None:
    topic = "Dana Whitfield talks about home batteries and energy storage for households in Germany."
    model = ScriptedModel(write=lambda _q, _b: topic)
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    assert result.insights == [] and result.dropped["vague"] == 1 and result.rewrites == 1
    assert len(model.calls["write"]) == 2 and model.calls["verify"] == []


async def test_a_claim_in_discusses_wording_goes_to_the_verifier_and_is_kept_when_supported() -> None:
    text = "Dana Whitfield discusses how home battery prices fell by half between 2020 and 2024 in Germany."
    model = ScriptedModel(write=lambda _q, _b: text)
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "drop"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    [ins] = result.insights
    assert ins.text == text and result.rewrites == 0 and len(model.calls["verify"]) == 1


async def test_unsupported_text_falls_back_to_the_quote_when_asked() -> None:
    model = ScriptedModel(verify=lambda _s, _b: ("unsupported", "the passage says nothing about that"))
    result = await extractor(FakeOpenAI(responder=model), settings(quality={"text_fallback": "quote"})).extract(
        long_transcript(1), episode_id=EP, show="S", title="T"
    )
    [ins] = result.insights
    assert ins.text == ins.quote == LINES[0] and ins.kind == "claim"
    assert result.text_from_quote == 1


async def test_sponsor_reads_are_never_written_up() -> None:
    segs = (
        Segment(start_s=0, end_s=20, text=SPONSOR + " Acme mattresses cut back pain by 40 percent.", speaker="Host"),
        Segment(start_s=20, end_s=40, text=LINES[3], speaker="Guest"),
    )
    t = Transcript(text="x", language="en", duration_s=40, segments=segs)
    # The model picks every sentence, the ad's claims first.
    model = ScriptedModel(
        select=lambda s: [{"s": n, "e": n, "h": f"point {n}", "w": 5 if n < 3 else 3} for n in sorted(s)][:3]
    )
    result = await extractor(FakeOpenAI(responder=model)).extract(t, episode_id=EP, show="S", title="T")
    assert result.dropped["promotional"] >= 1
    assert [i.quote for i in result.insights] == [LINES[3]]
    assert not any("Acme" in q for b in model.calls["write"] for q in marked_sentences(b))


async def test_the_episodes_top_points_are_written_not_the_first_ones() -> None:
    """Candidates from every chunk are ranked first; only the head of the ranking costs write/verify calls."""
    facts = [
        "Helion expects its fusion plant to deliver power to Microsoft by 2028.",
        "Commonwealth Fusion raised two billion dollars for its tokamak in Massachusetts.",
        "Tokamak magnets made of new superconductors shrank reactors by a factor of forty.",
        "Fusion fuel from seawater could power cities for millions of years.",
    ]
    segs = tuple(
        Segment(
            start_s=i * 30.0,
            end_s=i * 30.0 + 29.0,
            text=facts[i // 4] if i % 4 == 3 else LINES[i % 3] + f" That was part {i} of the talk.",
            speaker="Dana Whitfield",
        )
        for i in range(16)
    )
    t = Transcript(text="x", language="en", duration_s=480.0, segments=segs)

    def select(sentences: dict[int, str]) -> list[dict[str, Any]]:
        return [
            {"s": n, "e": n, "h": text[:80], "w": 5 if "usion" in text or "okamak" in text else 2}
            for n, text in sorted(sentences.items())
            if not text.startswith("That was")
        ][:3]

    model = ScriptedModel(select=select)
    s = settings(quality={"max_insights_per_episode": 2, "novelty": 0.0})
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    assert len(result.insights) == 2
    assert all(i.quote in facts for i in result.insights), [i.quote for i in result.insights]
    assert len(model.calls["write"]) == 2, "only the candidates that can make the top 2 are written"
    assert result.dropped["episode_cap"] > 0 and result.candidates > 4


async def test_a_short_episode_keeps_fewer_insights() -> None:
    model = ScriptedModel(select=lambda s: [{"s": n, "e": n, "h": f"point {n}", "w": 4} for n in sorted(s)][:3])
    s = settings(quality={"max_insights_per_episode": 8, "minutes_per_insight": 1.5})
    result = await extractor(FakeOpenAI(responder=model), s).extract(
        long_transcript(4), episode_id=EP, show="S", title="T"
    )
    # Two minutes of audio: at most two insights, and no more than two write calls.
    assert len(result.insights) <= 2 and len(model.calls["write"]) <= 2


async def test_invalid_chunk_fails_alone_and_the_episode_completes() -> None:
    model = ScriptedModel()

    def answer(body: dict[str, Any]) -> Any:
        if stage_of(body) == "select" and "part 0 " in FakeOpenAI.user_prompt(body):
            return "I'm sorry, I cannot do that."  # first answer and repair both invalid
        return model(body)

    result = await extractor(FakeOpenAI(responder=answer)).extract(
        long_transcript(12), episode_id=EP, show="S", title="T"
    )
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


@pytest.mark.parametrize(("policy", "requests"), [("skip", 0), ("process", 3)])
async def test_unsupported_language_policy(policy: str, requests: int) -> None:
    fake = FakeOpenAI(responder=ScriptedModel())
    t = Transcript(text=LINES[0], language="de", duration_s=5, segments=(Segment(start_s=0, end_s=5, text=LINES[0]),))
    result = await extractor(fake, settings(unsupported_language=policy)).extract(t, episode_id=EP, show="S", title="T")
    assert len(fake.requests) == requests
    assert result.status == ("skipped" if policy == "skip" else "done")


async def test_model_picks_out_of_range_are_clamped_and_fragments_widened() -> None:
    model = ScriptedModel(select=lambda s: [{"s": 99, "e": 1, "h": "everything", "w": 9}])
    t = Transcript(
        text="x",
        language="en",
        duration_s=20,
        segments=(Segment(start_s=0, end_s=20, text="Yes. Fusion startups raised four billion dollars last year."),),
    )
    result = await extractor(FakeOpenAI(responder=model)).extract(t, episode_id=EP, show="S", title="T")
    [ins] = result.insights
    # "Yes." alone is too short to quote: the range grows by a sentence, within the chunk, and the brief quotes
    # the point without the acknowledgement it opened with.
    assert norm_tokens(ins.quote) == norm_tokens("Fusion startups raised four billion dollars last year.")


async def test_answers_stay_small() -> None:
    """Generation is the expensive part on a CPU: every call's answer is bounded."""
    model = ScriptedModel()
    await extractor(FakeOpenAI(responder=model)).extract(long_transcript(4), episode_id=EP, show="S", title="T")
    budgets = {stage: {c["max_tokens"] for c in calls} for stage, calls in model.calls.items()}
    assert max(budgets["select"]) <= 160 and max(budgets["write"]) <= 200 and max(budgets["verify"]) <= 64
    verify_schema = model.calls["verify"][0]["response_format"]["json_schema"]["schema"]
    assert verify_schema["properties"]["v"]["enum"] == ["supported", "partly", "unsupported"]
    assert json.loads(json.dumps(verify_schema))["properties"]["r"]["maxLength"] <= 120


def test_the_pick_call_must_write_up_several_points_of_a_long_chunk_and_may_write_none_of_a_short_one() -> None:
    s = settings(pick=True, chunking=ChunkingSettings(window_s=600, overlap_s=30, max_tokens=900))
    ex = Extractor(LLMClient(s.llm), s)
    long_chunk = ex.chunks(long_transcript(12))[0]
    assert len(long_chunk.sentences) >= 20
    messages, schema, max_tokens = ex.select_request(long_chunk, show="S", title="T")
    assert schema["properties"]["p"]["minItems"] == 2 and schema["properties"]["p"]["maxItems"] == 3
    assert "Write up the 2 to 3 most important points." in messages[-1]["content"]
    # The budget holds the most points the schema allows.
    assert max_tokens >= 3 * 100
    short = ex.chunks(long_transcript(1))[0]
    assert len(short.sentences) < 10
    messages, schema, _ = ex.select_request(short, show="S", title="T")
    assert "minItems" not in schema["properties"]["p"] and '{"p": []}' in messages[-1]["content"]


HOST_ASKS = "So Dana, what happened to the price of home batteries over those years?"


def host_and_guest() -> Transcript:
    segs = (
        Segment(start_s=0, end_s=5, text=HOST_ASKS, speaker="Tom Hale"),
        Segment(start_s=5, end_s=12, text=LINES[0], speaker="Dana Whitfield"),
    )
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=12, segments=segs)


def guest_point(sentences: dict[int, str]) -> list[dict[str, Any]]:
    n = next(k for k, v in sentences.items() if v.startswith("Home battery"))
    return [{"s": n, "e": n, "h": "battery prices", "w": 4}]


@pytest.mark.parametrize("rewrite_names", ["Dana Whitfield", "Tom Hale"])
async def test_a_claim_credited_to_the_host_who_asked_is_written_again_and_refused_if_it_still_is(
    rewrite_names: str,
) -> None:
    claim = " says home battery prices fell by half between 2020 and 2024 in Germany, so storage now pays off."
    model = ScriptedModel(
        select=guest_point,
        write=lambda _q, body: ("Tom Hale" if stage_of(body) == "select" else rewrite_names) + claim,
    )
    people = (Person(name="Tom Hale", role="host"), Person(name="Dana Whitfield", role="guest"))
    result = await extractor(FakeOpenAI(responder=model), settings(pick=True)).extract(
        host_and_guest(), episode_id=EP, show="Energy Hour", title="Batteries", people=people
    )
    assert len(model.calls["write"]) == 1 and result.rewrites == 1
    # The pick call was not told to guess the speakers, and the writer is told who says the quote.
    assert "does not say who speaks" not in FakeOpenAI.user_prompt(model.calls["select"][0])
    assert 'the insight starts with "Dana Whitfield"' in FakeOpenAI.user_prompt(model.calls["write"][0])
    if rewrite_names == "Dana Whitfield":
        [ins] = result.insights
        assert ins.text.startswith("Dana Whitfield says") and ins.speaker == "Dana Whitfield"
    else:
        assert result.insights == [] and result.dropped["misattributed"] == 1
        assert not model.calls.get("verify"), "refused in code, before the verifier"


def without_labels(*extra: Segment) -> Transcript:
    """`host_and_guest` as Whisper would give it: the same words, no speaker labels; `extra` after the host's
    question."""
    t = host_and_guest()
    segments = (t.segments[0], *extra, t.segments[1])
    return Transcript(
        text=" ".join(s.text for s in segments),
        language="en",
        duration_s=t.duration_s,
        segments=tuple(s.model_copy(update={"speaker": None}) for s in segments),
    )


CLAIM = "home battery prices fell by half between 2020 and 2024 in Germany, so storage pays off."


async def test_without_speaker_labels_a_credit_the_passage_does_not_found_goes_to_the_show() -> None:
    # The host asks "So Dana, ...?": the passage names Dana, never Tom, so "Tom Hale says" is the model's guess.
    model = ScriptedModel(select=guest_point, write=lambda _q, _b: f"Tom Hale says {CLAIM}")
    people = (Person(name="Tom Hale", role="host"), Person(name="Dana Whitfield", role="guest"))
    result = await extractor(FakeOpenAI(responder=model), settings(pick=True)).extract(
        without_labels(), episode_id=EP, show="Energy Hour", title="Batteries", people=people
    )
    assert 'write "A guest on Energy Hour says' in FakeOpenAI.user_prompt(model.calls["select"][0])
    assert "does not say who speaks" in FakeOpenAI.user_prompt(model.calls["write"][0])
    assert "the insight starts with" not in FakeOpenAI.user_prompt(model.calls["write"][0])
    [ins] = result.insights
    assert ins.text == f"Energy Hour hears that {CLAIM}" and ins.speaker is None
    # The verifier judged the text the brief prints.
    assert f"Energy Hour hears that {CLAIM}" in FakeOpenAI.user_prompt(model.calls["verify"][0])


@pytest.mark.parametrize(
    ("writes", "intro", "kept"),
    [
        # Named in the passage ("So Dana, ..."): the name stands.
        (f"Dana Whitfield says {CLAIM}", "I run the battery lab.", "Dana Whitfield says"),
        # Named, but somebody else introduces themselves as the one who speaks: refused.
        (f"Dana Whitfield says {CLAIM}", "I'm Tom Hale, and I run the battery lab.", None),
        # Not named, and not a credit the show can take over (the text names him again): refused.
        (f"Tom Hale says {CLAIM} Tom Hale agrees with it.", "I run the battery lab.", None),
    ],
)
async def test_without_speaker_labels_a_named_credit_stands_only_where_the_passage_founds_it(
    writes: str, intro: str, kept: str | None
) -> None:
    model = ScriptedModel(select=guest_point, write=lambda _q, _b: writes)
    people = (Person(name="Tom Hale", role="host"), Person(name="Dana Whitfield", role="guest"))
    segment = Segment(start_s=4, end_s=5, text=intro, speaker=None)
    result = await extractor(FakeOpenAI(responder=model), settings(pick=True)).extract(
        without_labels(segment), episode_id=EP, show="Energy Hour", title="Batteries", people=people
    )
    if kept is None:
        assert result.insights == [] and result.dropped["misattributed"] == 1
        assert not model.calls.get("verify"), "refused in code, before the verifier"
    else:
        [ins] = result.insights
        assert ins.text.startswith(kept)


def point_without_backchannel(quote: list[str], body: dict[str, Any]) -> str:
    """A fake writer for `facts_among_backchannel`: the speaker says the quote's first nine words of substance."""
    point = " ".join(q for q in quote if not q.startswith("Yeah")).split()
    return f"{speaker_of(body)} says that {' '.join(point[:9])}, which matters to investors."


def facts_among_backchannel(facts: list[str]) -> Transcript:
    """One guest, a segment every 30 s: each fact, then the sponsor read, in the middle of five segments of
    backchannel ("Yeah, right, ..."), so code proposes each as a passage of its own."""
    lines = [*facts, SPONSOR]
    return said(
        *(("Dana Whitfield", lines[i // 5] if i % 5 == 2 else BACK) for i in range(5 * len(lines))), every_s=30.0
    )


async def test_code_proposed_passages_are_written_with_an_importance_that_ranks_them() -> None:
    """candidates="passages": no call per chunk; each proposed passage is written once with its importance,
    the ranking keeps the most important, and only those are verified."""
    facts = {
        "Helion expects its fusion plant to deliver power to Microsoft by 2028.": 5,
        "Commonwealth Fusion raised two billion dollars for its tokamak in Massachusetts.": 5,
        "Our office moved to a bigger building in Boston in 2021, which was nice.": 1,
        "We found that 80 percent of the cost came from three services at Acme.": 2,
    }
    t = facts_among_backchannel(list(facts))

    def weigh(quote: list[str]) -> int:
        return max((w for fact, w in facts.items() if fact in quote), default=1)

    model = ScriptedModel(weigh=weigh, write=point_without_backchannel)
    s = settings(quality={"candidates": "passages", "max_insights_per_episode": 2}, prompt_version="v5")
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    assert model.calls["select"] == [], "code proposes the candidates"
    written = [" ".join(marked_sentences(b)) for b in model.calls["write"]]
    # Each point is written once, however many overlapping chunks saw it; a sponsor read never is.
    assert all(sum(f in w for w in written) == 1 for f in facts), written
    assert all("Acme Mattress" not in w for w in written)
    assert all(b["response_format"]["json_schema"]["schema"]["properties"]["w"] for b in model.calls["write"])
    # The two points the writer rated 5 are kept; only as many as can make the top 2 are verified.
    assert sorted(f for f in facts for i in result.insights if f in i.quote) == sorted(list(facts)[:2])
    assert all(i.text.startswith("Dana Whitfield says that") for i in result.insights)
    assert len(model.calls["verify"]) == 2 and result.dropped["episode_cap"] >= 2
    assert all(i.prompt_version == "insights_v5" for i in result.insights)


def rated_episode() -> tuple[Transcript, dict[str, float]]:
    """Twelve and a half minutes of one guest: five facts among backchannel, and a sponsor read; with how likely
    the model finds each fact a top takeaway."""
    facts = {
        "Home battery prices fell by half between 2020 and 2024 in Germany.": 0.9,
        "Nuclear fusion startups raised four billion dollars last year from private investors.": 0.8,
        "I think small language models will run on every phone by 2027.": 0.3,
        "We should all stop checking email before ten in the morning, it ruins focus.": 0.2,
        "We found that 80 percent of the cost came from three services at Acme.": 0.1,
    }
    return facts_among_backchannel(list(facts)), facts


async def test_the_model_rates_each_proposed_passage_and_only_the_best_rated_are_written() -> None:
    t, facts = rated_episode()

    def rate(passage: str) -> float:
        return max((p for fact, p in facts.items() if fact in passage), default=0.05)

    model = ScriptedModel(rate=rate, write=point_without_backchannel)
    s = settings(quality={"candidates": "passages", "max_insights_per_episode": 2}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=model), s).extract(
        t, episode_id=EP, show="Energy Hour", title="Batteries"
    )
    assert model.calls["select"] == [], "code proposes the candidates"
    rated = [FakeOpenAI.user_prompt(b) for b in model.calls["rate"]]
    # Every point is rated once, however many overlapping chunks proposed it; the sponsor read never is.
    assert all(sum(f in r for r in rated) == 1 for f in facts), rated
    assert all("Acme Mattress" not in r for r in rated)
    assert all(r.startswith("Episode: Energy Hour: Batteries") for r in rated)
    # Only the head of the ranking is written and verified: the two best-rated points are kept.
    written = [" ".join(marked_sentences(b)) for b in model.calls["write"]]
    assert len(written) <= 4 and all(
        "w" not in b["response_format"]["json_schema"]["schema"]["properties"] for b in model.calls["write"]
    )
    assert sorted(f for f in facts for i in result.insights if f in i.quote) == sorted(list(facts)[:2])
    assert all(i.prompt_version == "insights_v6" for i in result.insights)
    assert result.stages["rate"].requests == len(rated) and result.dropped["episode_cap"] >= 1


@pytest.mark.parametrize(("speaker_weight", "kept"), [(0.5, "Nuclear fusion"), (0.0, "Home battery")])
async def test_who_speaks_moves_the_rating_a_guests_point_made_at_length_over_a_hosts_aside(
    speaker_weight: float, kept: str
) -> None:
    """The model rates the host's aside a little higher than the guest's point; the feed names who hosts and
    who is the guest, and the guest makes the point well into a long turn: that point is the one kept."""
    host, guest = "Hal Porter", "Dana Whitfield"
    turns = [
        (host, BACK),
        (guest, BACK),
        (host, "Home battery prices fell by half between 2020 and 2024 in Germany."),
        (guest, BACK),
        (host, BACK),
        (guest, BACK),
        (host, BACK),
        (
            guest,
            "We spent three years building grid software for utilities in Texas. Nuclear fusion startups raised "
            "four billion dollars last year from private investors. Most of that money goes to magnets and pilots.",
        ),
        (host, BACK),
        (guest, BACK),
        (host, BACK),
    ]
    t = said(*turns, every_s=30.0)

    def rate(passage: str) -> float:
        return 0.85 if "Home battery" in passage else 0.8 if "Nuclear fusion" in passage else 0.05

    model = ScriptedModel(rate=rate, write=point_without_backchannel)
    s = settings(
        quality={"candidates": "passages", "max_insights_per_episode": 1, "speaker_weight": speaker_weight},
        prompt_version="v6",
    )
    people = (Person(name=host, role="host"), Person(name=guest, role="guest"))
    result = await extractor(FakeOpenAI(responder=model), s).extract(
        t, episode_id=EP, show="Energy Hour", title="Batteries", people=people
    )
    [insight] = result.insights
    assert kept in insight.quote
    ratings = {d.rating for d in result.decisions if "Home battery" in d.quote or "Nuclear fusion" in d.quote}
    assert ratings == {0.85, 0.8}, "the decisions keep the model's own rating"


async def test_a_passage_the_model_cannot_rate_is_dropped_and_the_episode_completes() -> None:
    t, _ = rated_episode()
    model = ScriptedModel()

    def respond(body: dict[str, Any]) -> Any:
        if stage_of(body) == "rate" and "Home battery" in FakeOpenAI.user_prompt(body):
            return httpx.Response(400, json={"error": "logprobs not supported for this prompt"})
        return model(body)

    s = settings(quality={"candidates": "passages"}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=respond), s).extract(t, episode_id=EP, show="S", title="T")
    assert result.dropped["invalid_output"] >= 1
    assert result.insights and all("Home battery" not in i.quote for i in result.insights)


async def test_a_written_passage_is_quoted_where_the_text_comes_from() -> None:
    """The writer reads the passage with its context; a text about a context sentence moves the quote there, so
    the verifier judges the sentence the text retells (not the one that was marked)."""
    lines = [
        "Honestly I nap for twenty minutes every afternoon and it doubled my focus in the evening.",
        "Anyway, that is a different story.",
        "We should all stop checking email before ten in the morning, it ruins focus.",
    ]
    t = talk(*lines)
    text = "Dana Whitfield says a twenty minute afternoon nap doubled her focus in the evening, a cheap habit to try."
    verified, verify = verifier()
    model = ScriptedModel(rate=lambda p: 0.9 if "email" in p else 0.1, write=lambda _q, _b: text, verify=verify)
    s = settings(
        quality={"candidates": "passages", "max_insights_per_episode": 1, "verify_context": 0},
        prompt_version="v6",
    )
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    # The marked passage was the email sentence (rated best); the text is about the nap.
    assert any(">> We should all stop checking email" in FakeOpenAI.user_prompt(b) for b in model.calls["write"])
    [insight] = result.insights
    assert insight.quote == lines[0] and insight.start_s == 0.0
    assert "nap" in verified[0] and "email" not in verified[0]


async def test_a_kept_quote_is_cut_to_its_point_and_credited_to_who_made_it() -> None:
    """The passage is the rated sentence with one on either side: the one before opens with an answer's "Right."
    and the one after is the host asking the next question. The writer and the verifier read both whole; the
    brief quotes neither the acknowledgement nor the question."""
    t = said(
        ("Dana Whitfield", "Right. I spent ten years installing storage for families across the country."),
        ("Dana Whitfield", "Home battery prices fell by half between 2020 and 2024 in Germany."),
        ("Tom Hale", "So should everyone buy one now, or wait another year?"),
    )
    text = "Dana Whitfield says home battery prices in Germany halved between 2020 and 2024, so storage now pays."
    verified, verify = verifier()
    model = ScriptedModel(rate=lambda p: 0.9 if "battery" in p else 0.1, write=lambda _q, _b: text, verify=verify)
    s = settings(quality={"candidates": "passages", "max_insights_per_episode": 1}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    assert any(">> So should everyone buy one now" in FakeOpenAI.user_prompt(b) for b in model.calls["write"])
    assert "So should everyone buy one now" in verified[0] and "Right. I spent ten years" in verified[0]
    [insight] = result.insights
    assert insight.quote.startswith("I spent ten years") and insight.quote.endswith("2020 and 2024 in Germany.")
    assert insight.end_s == 19.0 and insight.speaker == "Dana Whitfield"
    assert insight.insight_id == insight_id(EP, insight.quote, insight.start_s)


BACK = "Yeah, right, that makes sense."
BATTERY = "Home battery prices fell by half between 2020 and 2024 in Germany."
FUSION = "Nuclear fusion startups raised four billion dollars last year from private investors."
SOLAR = "Solar panel installs doubled in Spain last year because loans got cheaper."


def talk(*lines: str) -> Transcript:
    """Dana Whitfield's sentences, one every ten seconds."""
    return said(*(("Dana Whitfield", line) for line in lines))


def verifier() -> tuple[list[str], Callable[[str, dict[str, Any]], tuple[str, str]]]:
    """A verify rule for `ScriptedModel` that finds every text supported, and the passages it was shown."""
    shown: list[str] = []

    def verify(_summary: str, body: dict[str, Any]) -> tuple[str, str]:
        shown.append(FakeOpenAI.user_prompt(body))
        return "supported", "the passage says so"

    return shown, verify


def writes_about_the_battery(quote: list[str], body: dict[str, Any]) -> str:
    """A writer that, shown the battery sentence anywhere in its passage's context, writes about it."""
    if "Home battery" in FakeOpenAI.user_prompt(body):
        return "Dana Whitfield says home battery prices in Germany fell by half between 2020 and 2024."
    return point_without_backchannel(quote, body)


async def test_two_passages_written_about_the_sentence_they_share_give_one_insight_and_the_next_takes_the_place() -> (
    None
):
    """The writer of the second passage reads the first fact in its context and writes about it: its quote moves
    onto the first insight's sentence. Not a second insight on the same sentences: a duplicate, and the
    episode's second place goes to the next candidate."""
    t = talk(BACK, BACK, BATTERY, BACK, BACK, BACK, FUSION, *[BACK] * 5, SOLAR, BACK, BACK, BACK)

    def rate(passage: str) -> float:
        return 0.9 if "Home battery" in passage else 0.8 if "fusion" in passage else 0.6 if "Solar" in passage else 0.1

    model = ScriptedModel(rate=rate, write=writes_about_the_battery)
    s = settings(quality={"candidates": "passages", "max_insights_per_episode": 2}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    assert sorted(i.quote.count("Home battery") + 2 * i.quote.count("Solar") for i in result.insights) == [1, 2]
    [duplicate] = [d for d in result.decisions if d.outcome == "duplicate" and d.text]
    assert "Home battery" in duplicate.quote and "battery" in duplicate.text
    assert result.dropped["duplicate"] >= 1


async def test_a_passage_written_onto_a_kept_insight_is_a_duplicate_without_a_verify_call() -> None:
    """The first batch keeps the battery point and loses the wind point to the verifier. The next candidate's
    writer writes about the battery sentence in its context: its quote moves onto the kept insight's sentences,
    so it is a duplicate before anyone verifies it, and the place goes to the candidate after it."""
    wind = "Offshore wind farms in Denmark now deliver power below forty euros per megawatt hour."
    t = talk(BACK, BACK, BATTERY, BACK, BACK, BACK, FUSION, *[BACK] * 5, wind, *[BACK] * 5, SOLAR, BACK, BACK, BACK)

    def rate(passage: str) -> float:
        return next(
            (p for word, p in (("battery", 0.9), ("wind", 0.85), ("fusion", 0.8), ("Solar", 0.6)) if word in passage),
            0.1,
        )

    def verify(summary: str, _body: dict[str, Any]) -> tuple[str, str]:
        return ("unsupported", "no") if "wind" in summary else ("supported", "yes")

    model = ScriptedModel(rate=rate, write=writes_about_the_battery, verify=verify)
    s = settings(quality={"candidates": "passages", "max_insights_per_episode": 2}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    [duplicate] = [d for d in result.decisions if d.outcome == "duplicate" and d.text]
    assert "Home battery" in duplicate.quote and duplicate.verdict is None, "never sent to the verifier"
    assert len(model.calls["verify"]) == sum(d.verdict is not None for d in result.decisions)
    assert [d.outcome for d in result.decisions if "wind" in d.quote] == ["verdict_unsupported"]
    assert sorted(i.quote.count("Home battery") + 2 * i.quote.count("Solar") for i in result.insights) == [1, 2]


async def test_a_text_that_shares_nothing_with_the_passage_leaves_its_quote_where_it_was() -> None:
    # A small model copying its prompt's example: no sentence is better evidence, so none is taken (the charge
    # per word would otherwise pick the shortest), and the gates refuse the text.
    lines = [
        "And so my fellow Americans ask not what your country can do for you",
        "ask what you can do for your country",
    ]
    segs = tuple(Segment(start_s=i * 5.0, end_s=i * 5.0 + 5.0, text=line) for i, line in enumerate(lines))
    t = Transcript(text=" ".join(lines), language="en", duration_s=10.0, segments=segs)
    example = "Ana Ruiz says data from 4,000 homes shows heat pumps cut winter bills by 45% in oil-heated homes."
    model = ScriptedModel(write=lambda _q, _b: example)
    s = settings(quality={"candidates": "passages", "text_fallback": "drop"}, prompt_version="v6")
    result = await extractor(FakeOpenAI(responder=model), s).extract(t, episode_id=EP, show="S", title="T")
    [decision] = result.decisions
    assert decision.quote == " ".join(lines) and decision.outcome == "unsupported_text"
    assert result.insights == []


@pytest.mark.parametrize(("candidates", "version"), [("passages", "v6"), ("passages", "v5"), ("model", "v4")])
async def test_progress_reaches_its_total_only_at_the_end(candidates: str, version: str) -> None:
    reports: list[tuple[int, int]] = []
    s = settings(quality={"candidates": candidates}, prompt_version=version)
    await extractor(FakeOpenAI(responder=ScriptedModel()), s).extract(
        long_transcript(12),
        episode_id=EP,
        show="S",
        title="T",
        progress=lambda done, total: reports.append((done, total)),
    )
    assert reports and reports[-1][0] == reports[-1][1]
    assert all(done < total for done, total in reports[:-1]), reports
