"""Grounding and quality gates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podbrief.events import Segment
from podbrief_extraction.grounding import copied, ground, specificity_problem, tokens_of

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
# faster-whisper tiny.en on ../shared/data/audio/jfk.flac with word timestamps (recorded once; see README).
JFK_WORDS = tuple(Segment.model_validate(s) for s in json.loads((DATA / "jfk_whisper_words.json").read_text()))
JFK_SEGMENT = (
    Segment(
        start_s=0.0,
        end_s=10.5,
        text="And so my fellow Americans, ask not what your country can "
        "do for you, ask what you can do for your country.",
    ),
)


def test_exact_quote_takes_times_from_words() -> None:
    g = ground("ask what you can do for your country", tokens_of(JFK_WORDS))
    assert g is not None and g.score == 1.0
    assert (g.start_s, g.end_s) == (8.02, 10.52)
    assert g.quote == "ask what you can do for your country"


def test_fuzzy_quote_returns_the_transcripts_own_words() -> None:
    # Punctuation, case and one changed word: still grounded, but the stored quote is the transcript's.
    g = ground("Ask not what YOUR country can do for us!", tokens_of(JFK_WORDS))
    assert g is not None and 0.8 <= g.score < 1.0
    assert g.quote == "ask not what your country can do for"
    assert g.start_s == 2.28 and g.end_s == 7.26


def test_segment_level_times_without_words() -> None:
    g = ground("ask not what your country can do for you", tokens_of(JFK_SEGMENT))
    assert g is not None and g.score == 1.0
    assert (g.start_s, g.end_s) == (0.0, 10.5)
    assert g.quote == "ask not what your country can do for you,"


def test_fabricated_quote_is_rejected() -> None:
    g = ground("We choose to go to the moon in this decade because it is hard", tokens_of(JFK_WORDS))
    assert g is None or g.score < 0.5


def test_speaker_comes_from_the_matched_segment() -> None:
    segs = (
        Segment(start_s=0, end_s=4, text="Batteries now cost half what they did.", speaker="Ana"),
        Segment(start_s=4, end_s=8, text="I still would not buy one.", speaker="Ben"),
    )
    g = ground("batteries now cost half what they did", tokens_of(segs))
    assert g is not None and g.speaker == "Ana" and (g.start_s, g.end_s) == (0, 4)
    g2 = ground("what they did. I still would not", tokens_of(segs))
    assert g2 is not None and g2.speaker is None  # spans two speakers


@pytest.mark.parametrize(
    "text,reason",
    [
        ("They discussed artificial intelligence at length.", "vague"),
        ("In this episode the hosts cover energy prices.", "vague"),
        ("The speakers talk about home batteries and prices.", "vague"),
        ("The speaker says batteries are getting cheaper every year.", None),
        ("He says batteries are getting cheaper every year.", "no_referent"),
        ("And what does it cost to build a small model for a phone?", "question"),
        ("Batteries.", "too_short"),
        # A degenerate loop (the default model's, on a held-out episode's "His wife became my wife's best friend").
        (
            "Sid Sijbrandij says his wife became his wife's best friend. He became his best friend's wife. "
            "He became his best friend's wife.",
            "repetitive",
        ),
        ("Ana Ruiz says heat pumps cut bills by 45 percent, and heat pumps cut noise too.", None),
        # A topic is not a claim; a claim phrased with "discusses" is still a claim (the verifier judges it).
        ("Alexandre Défossez discusses Moshi and speech models.", "vague"),
        ("Ana Ruiz talks about heat pumps. This matters for every homeowner.", "vague"),
        ("Alexandre Défossez discusses how Moshi replies within 200 milliseconds, so talk feels natural.", None),
        ("Ana Ruiz discusses heat pumps, which cut winter bills by 45 percent against oil boilers.", None),
        ("Ana Ruiz says heat pumps cut bills by 45 percent. She discusses insulation too.", None),
        ("Priya Raman discusses the benefits and drawbacks of small models, including speed, power and cost.", "vague"),
        ("Chris Benson asks Jeff Smith about the reactions people gave to his idea of music at work.", "vague"),
        # A dev text the announcement rule refused: the claim comes first, and a clause mentions asking.
        (
            "Matt Colyer says merchants can interact with buyers through Inbox, which allows them to ask questions "
            "about return policies and order status.",
            None,
        ),
        ("Ana Ruiz says the team talks about heat pumps.", "vague"),
        ("Jeff Smith asked 400 employees and found that 70 percent felt unheard by their managers.", None),
    ],
)
def test_vague_or_unanchored_text_is_refused(text: str, reason: str | None) -> None:
    assert specificity_problem(text, min_words=4) == reason


@pytest.mark.parametrize(
    "text",
    [
        "Kennedy asks Americans to ask what they can do for their country, not what it can do for them.",
        "Home battery prices fell by half between 2020 and 2024, according to the guest.",
        "The tax is about to rise by 2% next year.",
        "Moshi's reply time is about 200 milliseconds, close to a human's.",
    ],
)
def test_specific_claims_pass(text: str) -> None:
    assert specificity_problem(text, min_words=4) is None


def test_text_must_share_content_with_its_passage() -> None:
    passage = "ask not what your country can do for you, ask what you can do for your country"
    example = "A survey found that most nurses plan to leave the profession within five years."
    assert specificity_problem(example, min_words=4, context=passage) == "unsupported_text"
    good = "Kennedy tells Americans to ask what they can do for their country."
    assert specificity_problem(good, min_words=4, context=passage) is None


def test_a_text_that_copies_its_quote_is_told_from_one_that_restates_it() -> None:
    quote = (
        "I would describe our approach as unembarrassed with how pragmatic we are on these issues, whether it's "
        "open source, or one of the commodity providers for LLMs."
    )
    assert copied("Mike Tamir says our approach as unembarrassed with how pragmatic we are on these issues.", quote)
    restated = "Mike Tamir says Shopify picks whatever works, open-source or commercial LLMs, without embarrassment."
    assert not copied(restated, quote)
    assert not copied("Short.", quote)
