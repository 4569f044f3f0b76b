"""The episode-level pass: promotional candidates out, duplicates merged, ranked by importance, specificity
and novelty; short episodes keep fewer insights."""

from __future__ import annotations

import pytest
from podbrief.events import Person
from podbrief_extraction.chunking import Sentence
from podbrief_extraction.selection import (
    TURN_WORDS_CAP,
    Candidate,
    dense_sentences,
    episode_cap,
    guest_value,
    key_passages,
    promotional,
    rank,
    small_talk,
    speaker_lift,
    specificity,
    turn_words,
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


def rated(
    text: str, start: float, rating: float, *, guest: float = 0.5, turn: int = 0, speaker: str | None = "Guest"
) -> Candidate:
    c = Candidate(chunk=0, sentences=(Sentence(1, text, speaker, start, start + 8.0),), headline=text, weight=3)
    c.rating, c.guest, c.turn_words = rating, guest, turn
    return c


def test_a_rated_candidate_ranks_on_its_rating_when_speakers_do_not_count() -> None:
    low = rated("Acme moved its build cluster to spot instances last spring, which cut the bill.", 0, 0.6)
    high = rated("We found that small models run well on phones when the weights are quantised.", 100, 0.9)
    # Rated candidates ignore the importance and specificity that code would weigh.
    high.weight, low.weight = 1, 5
    assert rank([low, high], merge_similarity=0.9) == [high, low]
    assert high.score == pytest.approx(0.9)


def test_a_guest_explaining_at_length_outranks_a_host_remark_the_model_rated_a_little_higher() -> None:
    remark = rated(
        "That is a really interesting way to think about the whole thing, I love it.",
        0,
        0.82,
        guest=0.0,
        turn=30,
        speaker="Host",
    )
    point = rated(
        "Our cache moved to object storage and CI went from 19 minutes to 6 for everyone.",
        600,
        0.80,
        guest=1.0,
        turn=400,
    )
    texts = (
        "Postgres handles time series well once the tables are partitioned by day.",
        "The compiler got twice as fast after the team rewrote its type checker.",
        "Small models now run on phones because quantised weights fit in memory.",
    )
    others = [rated(t, 100 + 60 * i, r, turn=200) for i, (t, r) in enumerate(zip(texts, (0.5, 0.7, 0.9), strict=True))]
    pool = [remark, point, *others]
    plain = rank(pool, merge_similarity=0.95, novelty=0.0)
    assert plain.index(remark) < plain.index(point)
    lifted = rank(pool, merge_similarity=0.95, novelty=0.0, speaker_weight=0.5)
    assert lifted.index(point) < lifted.index(remark)
    # Between passages whose speakers weigh the same, the rating decides.
    assert lifted.index(others[2]) < lifted.index(others[1]) < lifted.index(others[0])


def test_the_speaker_lift_is_in_units_of_the_ratings_spread_and_nothing_where_cues_do_not_vary() -> None:
    a = rated("one", 0, 0.9, guest=1.0, turn=100)
    b = rated("two", 10, 0.7, guest=0.0, turn=100, speaker="Host")
    lift = speaker_lift([a, b], 0.5)
    # Ratings' standard deviation 0.1; the role cue is +1/-1 standardised, the turn cue does not vary.
    assert lift[id(a)] == pytest.approx(0.05) and lift[id(b)] == pytest.approx(-0.05)
    assert speaker_lift([a, b], 0.0) == {} and speaker_lift([a], 0.5) == {}
    # A feed without people: the role does not vary, the turn still does.
    c, d = rated("one", 0, 0.9, turn=20), rated("two", 10, 0.7, turn=150, speaker="Host")
    assert speaker_lift([c, d], 0.5)[id(d)] > 0


def test_a_solo_show_or_an_unnamed_transcript_ranks_on_the_rating_alone() -> None:
    # One speaker: a longer turn only means a later passage in the window.
    solo = [rated("one", 0, 0.9, turn=20), rated("two", 10, 0.7, turn=200)]
    assert speaker_lift(solo, 0.5) == {}
    unnamed = [rated("one", 0, 0.9, speaker=None), rated("two", 10, 0.7, speaker=None)]
    assert speaker_lift(unnamed, 0.5) == {}


def test_turn_words_count_the_speakers_unbroken_turn_through_the_paragraph_end() -> None:
    s = [
        Sentence(1, "So tell us how it started?", "Host", 0, 2, turn=0),
        Sentence(2, "It started in a garage in 2019.", "Guest", 2, 4, turn=1),
        Sentence(3, "We had two servers and a dream.", "Guest", 4, 6, turn=1),
        Sentence(4, "Then the cloud bill arrived and we moved to bare metal.", "Guest", 6, 9, turn=2),
        Sentence(5, "It cut the bill in half.", "Guest", 9, 11, turn=2),
        Sentence(6, "Wow.", "Host", 11, 12, turn=3),
    ]
    # Sentence 4: the guest's two sentences before it, and its paragraph to its end (sentences 2-5).
    assert turn_words(s, 3) == sum(len(x.text.split()) for x in s[1:5])
    # Sentence 2: the paragraph of sentences 2-3 only; the host's question is another turn.
    assert turn_words(s, 1) == 14
    assert turn_words(s, 0) == 6
    anonymous = [Sentence(1, "It started in a garage in 2019.", None, 0, 2)]
    assert turn_words(anonymous, 0) == 0
    # A turn that reaches back to the start of a window that is not the episode's first began before it.
    assert turn_words(s, 0, opened_before=True) == TURN_WORDS_CAP
    assert turn_words(s, 3, opened_before=True) == 31
    monologue = [
        Sentence(i + 1, "We measured the cache hit rate every single day.", "Guest", i, i + 1) for i in range(40)
    ]
    assert turn_words(monologue, 39) == TURN_WORDS_CAP


@pytest.mark.parametrize(
    ("speaker", "value"),
    [
        ("Ada Guest", 1.0),
        ("Hal Host", 0.0),
        ("Cleo Cohost", 0.0),
        ("Gus Guesthost", 0.0),
        ("Pat Producer", 0.5),
        ("Someone Else", 0.5),
        (None, 0.5),
    ],
)
def test_guest_value_follows_the_feeds_person_roles(speaker: str | None, value: float) -> None:
    people = [
        Person(name="Ada Guest", role="guest"),
        Person(name="Hal Host", role="host"),
        Person(name="Cleo Cohost", role="Co-Host"),
        Person(name="Gus Guesthost", role="Guest Host"),
        Person(name="Pat Producer", role="producer"),
    ]
    assert guest_value(speaker, people) == value
    assert guest_value(speaker, []) == 0.5


def test_the_main_sentence_is_the_first_of_whoever_says_most_of_the_quote() -> None:
    c = Candidate(
        chunk=0,
        sentences=(
            Sentence(4, "And why did that matter?", "Host", 0, 2),
            Sentence(5, "Because the bill halved within a month.", "Guest", 2, 4),
            Sentence(6, "And nobody had to rewrite a line of code for it.", "Guest", 4, 7),
        ),
        headline="",
        weight=3,
    )
    assert c.main_sentence().number == 5 and c.speaker is None
