"""The episode-level pass: promotional candidates out, duplicates merged, ranked by importance, specificity
and novelty; short episodes keep fewer insights."""

from __future__ import annotations

import pytest
from podbrief_extraction.chunking import Sentence
from podbrief_extraction.selection import (
    Candidate,
    dense_sentences,
    episode_cap,
    key_passages,
    promotional,
    rank,
    small_talk,
    specificity,
)

pytestmark = pytest.mark.unit


def cand(text: str, start: float, *, weight: int = 3, headline: str | None = None, order: int = 0) -> Candidate:
    return Candidate(
        chunk=0,
        sentences=(Sentence(1, text, "Guest", start, start + 8.0),),
        headline=headline or text,
        weight=weight,
        order=order,
    )


def test_importance_and_specificity_order_the_candidates() -> None:
    vague = cand("Things are changing a lot these days in the industry, you know.", 0, weight=4)
    specific = cand("Helion will deliver 50 megawatts to Microsoft by 2028 from its fusion plant.", 100, weight=4)
    minor = cand("Fusion plants in 2028 will deliver 50 megawatts to Microsoft, says Helion.", 200, weight=1)
    ordered = rank([vague, minor, specific], merge_similarity=0.9)
    assert ordered[0] is specific and ordered[-1] is minor
    assert specificity(specific.quote) > specificity(vague.quote)


def test_the_same_passage_from_two_overlapping_chunks_is_one_candidate() -> None:
    a = cand("Helion will deliver 50 megawatts to Microsoft by 2028.", 100, weight=5)
    b = cand("Helion will deliver 50 megawatts to Microsoft by 2028.", 101, weight=3, headline="another headline")
    ordered = rank([a, b], merge_similarity=0.9)
    assert ordered == [a] and a.merged == 1 and a.duplicates == [b]


def test_the_same_point_made_twice_is_merged_by_headline() -> None:
    a = cand("Our reactor magnets are forty times smaller now.", 10, weight=4, headline="Magnets forty times smaller")
    b = cand("As I said, the magnets shrank forty fold.", 900, weight=3, headline="magnets forty times smaller!")
    assert rank([a, b], merge_similarity=0.5) == [a]


def test_novelty_lowers_a_second_insight_about_the_same_thing() -> None:
    a = cand("Helion will deliver 50 megawatts to Microsoft by 2028 from fusion.", 0, weight=5)
    b = cand("Helion's fusion plant for Microsoft is due in 2028 with 50 megawatts.", 300, weight=5, order=1)
    c = cand("Battery storage costs fell 40 percent in Germany last year alone.", 600, weight=4)
    assert rank([a, b, c], merge_similarity=0.95, novelty=1.0)[:2] == [a, c]
    assert rank([a, b, c], merge_similarity=0.95, novelty=0.0)[:2] == [a, b]


def test_promotional_candidates_are_left_out() -> None:
    ad = cand("Use the code BRIEF for 40% off your first order at acme.com/brief.", 0, weight=5)
    ad.promotional = True
    real = cand("Fusion startups raised four billion dollars last year.", 100, weight=2)
    assert rank([ad, real], merge_similarity=0.9) == [real]


def test_introductions_and_career_small_talk_rank_below_a_claim_of_the_same_weight() -> None:
    bio = cand("I worked on the F# language and the C# compiler at Microsoft for 10 years, then joined Honeycomb.", 0)
    welcome = cand("Today we finally got the chance to have Alexandre Defossez, co-founder of Kyutai, with us.", 50)
    claim = cand("Modern Java is fast: Amazon saved millions by moving old Java services onto a newer VM.", 100)
    assert rank([bio, welcome, claim], merge_similarity=0.9)[0] is claim
    # The written text counts too: "he was hired" is the guest's career, told in the brief's voice.
    told = cand("Our sales team was built for on-prem deals and could not sell cloud products at all.", 200)
    told.text = "Ajay Kulkarni says he was hired into a sales role he could not do well."
    assert small_talk(told.text) and not small_talk(told.quote)
    # Lowered, never dropped: a heavier point from a career story still ranks first.
    heavy = cand("I was hired to lead sales, and learned that expertise from 20 years of on-prem was a liability.", 0)
    heavy.weight = 5
    assert rank([heavy, claim], merge_similarity=0.9)[0] is heavy


@pytest.mark.parametrize(
    "text",
    [
        "This episode is brought to you by Nimbus Logs.",
        "Head to fieldstone.io/podcast and use the code SHIP for 20% off.",
        "Start a free trial today.",
        "Don't forget to subscribe and leave us a review.",
        "Welcome back to the show, everyone.",
        "This episode is supported by Hexwave, the observability platform for queues.",
        "Support for this podcast comes from Lumen Pay.",
        "Get 100 dollars in credit at hexwave.cloud/changelog.",
    ],
)
def test_ad_and_housekeeping_phrases(text: str) -> None:
    assert promotional(text)


@pytest.mark.parametrize(
    "text",
    [
        "We cut our storage bill by 60 percent with columnar compression.",
        "The code review found the bug in an hour.",
        "Open source is a great way to build trust with developers.",
        "I think the claim is that compilers got 30 percent faster in 2024.",
        "We store 4 petabytes of time-series data and query it in SQL.",
        "The background job queue was the bottleneck, not the database.",
        "That claim is supported by two studies from 2023.",
        "Our open source project is supported by three companies and many volunteers.",
        "Banks lost 3 billion dollars in credit card fraud last year.",
    ],
)
def test_ordinary_speech_is_neither_promotional_nor_small_talk(text: str) -> None:
    assert not promotional(text) and not small_talk(text)


@pytest.mark.parametrize(("minutes", "cap"), [(1, 1), (5, 4), (12, 8), (90, 8)])
def test_short_episodes_keep_fewer_insights(minutes: float, cap: int) -> None:
    assert episode_cap(minutes * 60, max_insights=8, minutes_per_insight=1.5) == cap


def test_the_prefilter_keeps_the_dense_passages_and_about_the_asked_share() -> None:
    from podbrief.events import Segment
    from podbrief_extraction.chunking import Chunk

    texts = [
        "Yeah, yeah, totally, I know what you mean there.",
        "Our build cluster cut CI time from 40 minutes to 6 minutes because we cache layers.",
        "That is funny, right, haha, anyway, moving along now.",
        "What do you think about that whole thing, honestly?",
        "We found that 80 percent of the cost came from three services at Acme.",
        "Okay, sure, sounds good to me, let us keep going then.",
    ]
    chunk = Chunk(0, tuple(Segment(start_s=i * 10.0, end_s=i * 10.0 + 9, text=t) for i, t in enumerate(texts)))
    shown = dense_sentences(chunk.sentences, 0.4)
    assert shown == {2, 5}
    assert dense_sentences(chunk.sentences, 1.0) == {1, 2, 3, 4, 5, 6}
    text = chunk.numbered_text(shown)
    assert text.splitlines() == [
        "[2] Our build cluster cut CI time from 40 minutes to 6 minutes because we cache layers.",
        "…",
        "[5] We found that 80 percent of the cost came from three services at Acme.",
    ]


def test_key_passages_are_the_densest_claims_spaced_apart_best_first() -> None:
    from podbrief.events import Segment
    from podbrief_extraction.chunking import Chunk

    filler = "Yeah, right, that makes sense to me."
    texts = [filler] * 12
    texts[2] = "We found that 80 percent of the cost came from three services at Acme."
    texts[3] = "Acme moved them to spot instances and cut the bill by 60 percent in 2023."
    texts[8] = "I think small models will run on every phone by 2027, because the chips got cheaper."
    texts[10] = "What do you think about the numbers, 40 percent or 60 percent?"
    chunk = Chunk(0, tuple(Segment(start_s=i * 10.0, end_s=i * 10.0 + 9, text=t) for i, t in enumerate(texts)))
    passages = key_passages(chunk.sentences, 5)
    # Two dense places, each once: the neighbours of a key sentence are never a passage of their own, the
    # question scores low, and backchannel is never proposed however many passages are asked for.
    keys = [p.key for p in passages]
    assert keys[:2] == [3, 9] or keys[:2] == [4, 9], keys
    assert all(abs(a - b) > 3 for i, a in enumerate(keys) for b in keys[i + 1 :])
    assert all(texts[p.key - 1] != filler for p in passages)
    first = passages[0]
    assert (first.first, first.last) == (first.key - 1, first.key + 1)
    assert key_passages(chunk.sentences, 1) == passages[:1]
    assert key_passages(chunk.sentences, 0) == [] and key_passages((), 3) == []
