"""The facts check in code: every number, name and date in a written text must be in its passage."""

from __future__ import annotations

import pytest
from podbrief_extraction.verification import (
    anonymous_speaker,
    check_facts,
    credit_the_show,
    lead_person,
    misattributed,
    names,
    numbers,
    unfounded_lead,
)

pytestmark = pytest.mark.unit

PASSAGE = (
    "Alexandre Défossez: With Moshi we have like around 200 milliseconds between the time the audio leaves your "
    "microphone and the time you get a reply. Kyutai launched a year ago in Paris with funding from three "
    "donors. The price has fallen by ninety percent in eighteen months, to about twelve thousand dollars in 2024."
)


def test_numbers_are_read_as_values_in_digits_and_words() -> None:
    assert numbers("fell by ninety percent in eighteen months") == {90.0, 18.0}
    assert numbers("8,000 euros, 2.5x faster, 1.5 billion users, the 1990s, 40%") >= {8000.0, 2.5, 1.5e9, 1990.0, 40.0}
    assert numbers("twelve thousand dollars and twenty-five cents") >= {12000.0, 25.0}
    # A speaker's plural scale (a real dev passage: "2 billion and 3 billions") is the same figure.
    assert numbers("2 billion and 3 billions, two millions") >= {2e9, 3e9, 2e6}
    assert check_facts("down from 7 billion to 3 billion", "we started at 7 billion, now 3 billions").ok
    assert 0.5 in numbers("half of them") and 50.0 in numbers("half of them")
    # "one" and "a" are not figures to check.
    assert numbers("one of the first models, a new idea") == set()


def test_names_are_capitalised_words_not_sentence_starts() -> None:
    found = names("Alexandre Défossez of Kyutai says Moshi is fast. This matters for OpenAI and GPT-4 in Paris.")
    assert {"défossez", "kyutai", "moshi", "openai", "gpt", "paris"} <= found
    assert "this" not in found and "alexandre" not in found  # sentence-initial, ordinary capital
    assert names("I think so.") == set()


@pytest.mark.parametrize(
    "text",
    [
        "Alexandre Défossez says Moshi replies in about 200 milliseconds, fast enough for real conversation.",
        "Kyutai, launched in Paris a year ago, is funded by three donors.",
        "Prices fell 90% in 18 months to roughly $12,000 in 2024.",
    ],
)
def test_faithful_paraphrases_pass(text: str) -> None:
    check = check_facts(text, PASSAGE)
    assert check.ok, check.describe()


@pytest.mark.parametrize(
    ("text", "reason", "missing"),
    [
        ("Moshi replies in about 300 milliseconds.", "unsupported_number", "300"),
        ("Kyutai launched in Paris in 2019 with three donors.", "unsupported_number", "2019"),
        ("Kyutai, backed by Google, launched in Paris.", "unsupported_name", "google"),
        ("Prices fell by 80% in eighteen months.", "unsupported_number", "80"),
    ],
)
def test_invented_numbers_names_and_dates_are_caught(text: str, reason: str, missing: str) -> None:
    check = check_facts(text, PASSAGE)
    assert not check.ok and check.reason == reason
    assert missing in check.describe()


PEOPLE = ["Chris Benson", "Jeff Smith", "Ana Ruiz"]


@pytest.mark.parametrize(
    ("text", "lead"),
    [
        ("Jeff Smith says 70 percent of staff feel unheard.", "jeff smith"),
        ("Jeff says 70 percent of staff feel unheard.", "jeff smith"),
        ("Smith's team found that 70 percent feel unheard.", "jeff smith"),
        ("Ana Ruiz's data shows heat pumps pay off.", "ana ruiz"),
        ("Shopify says it replaced Sidekick's core many times.", None),
        ("A guest on Practical AI says surveys miss what staff feel.", None),
    ],
)
def test_the_person_a_text_opens_with(text: str, lead: str | None) -> None:
    assert lead_person(text, PEOPLE) == lead


def test_a_first_name_two_people_share_names_nobody() -> None:
    assert lead_person("Chris says so.", ["Chris Benson", "Chris Lee"]) is None
    assert lead_person("Chris Lee says so.", ["Chris Benson", "Chris Lee"]) == "chris lee"


@pytest.mark.parametrize(
    ("text", "speakers", "passage", "wrong"),
    [
        # Speaker labels: the claim belongs to whoever says the quote.
        ("Jeff Smith says 70 percent feel unheard.", ["Jeff Smith"], "", False),
        ("Chris Benson says 70 percent feel unheard.", ["Jeff Smith"], "", True),
        ("Chris says 70 percent feel unheard.", ["Jeff Smith"], "", True),
        ("Chrp's survey found 70 percent feel unheard.", ["Jeff Smith"], "", False),
        # A diarizer's anonymous labels say nothing about who: judged as without labels.
        ("Chris Benson says 70 percent feel unheard.", ["SPEAKER_01"], "I'm Jeff Smith. We found 70 percent.", True),
        # No labels: a known person's name stands unless the passage has someone else introduce themselves.
        ("Chris Benson says 70 percent feel unheard.", [], "I'm Jeff, and what we found is 70 percent.", True),
        ("Chris Benson says 70 percent feel unheard.", [], "My name is Jeff Smith. We found 70 percent.", True),
        ("Jeff Smith says 70 percent feel unheard.", [], "I'm Jeff, and what we found is 70 percent.", False),
        ("Chris Benson says 70 percent feel unheard.", [], "So what we found is that 70 percent feel unheard.", False),
        ("A guest on Practical AI says 70 percent feel unheard.", [], "I'm Jeff Smith.", False),
    ],
)
def test_a_claim_credited_to_someone_who_did_not_say_it(
    text: str, speakers: list[str], passage: str, wrong: bool
) -> None:
    assert misattributed(text, people=PEOPLE, quote_speakers=speakers, passage=passage) is wrong


def test_a_diarizers_labels_are_anonymous_and_names_are_not() -> None:
    assert all(anonymous_speaker(x) for x in ("SPEAKER_01", "Speaker 2", "spk-3", "Unknown"))
    assert not any(anonymous_speaker(x) for x in ("Jeff Smith", "Speakerman Jones", "Chris"))


@pytest.mark.parametrize(
    ("text", "passage", "unfounded"),
    [
        ("Jeff Smith says 70 percent feel unheard.", "So what we found is that 70 percent feel unheard.", "Jeff Smith"),
        ("Jeff says 70 percent feel unheard.", "So Jeff, what did you find? 70 percent feel unheard.", None),
        ("Jeff Smith says 70 percent feel unheard.", "I'm Jeff Smith. We found 70 percent.", None),
        ("Smith's team found 70 percent feel unheard.", "Thanks, Mr Smith.", None),
        # A first name that is part of another word is not a mention.
        ("Ana Ruiz says 70 percent feel unheard.", "Banana growers and Ruizton found 70 percent.", "Ana Ruiz"),
        ("A guest on Practical AI says 70 percent feel unheard.", "We found 70 percent.", None),
    ],
)
def test_a_credit_a_passage_without_labels_does_not_found(text: str, passage: str, unfounded: str | None) -> None:
    assert unfounded_lead(text, people=PEOPLE, passage=passage) == unfounded
    # Initials only: no name to look for, so nothing founds the credit.
    assert unfounded_lead("J K says 70 percent feel unheard.", people=["J K"], passage="J K: we found it.") == "J K"


@pytest.mark.parametrize(
    ("text", "credited"),
    [
        (
            "Daniel Okafor says the price of a model has fallen 90% in 18 months.",
            "The Margin Call hears that the price of a model has fallen 90% in 18 months.",
        ),
        ("Okafor argues that batteries pay back.", "The Margin Call hears that batteries pay back."),
        ("Daniel Okafor, the host, says: batteries pay back.", "The Margin Call hears that batteries pay back."),
        ("Daniel explains how distillation cuts costs.", "The Margin Call hears how distillation cuts costs."),
        # The name before the prompt's own form for an unknown speaker (a demo brief's garble) goes.
        (
            "Daniel Okafor says The Margin Call hears that batteries pay back.",
            "The Margin Call hears that batteries pay back.",
        ),
        (
            "Daniel Okafor says a guest on the margin call says that batteries pay back.",
            "The Margin Call hears that batteries pay back.",
        ),
        # Not a plain credit, or the person named again: nothing to give the show.
        ("Okafor's team found that batteries pay back.", None),
        ("Daniel Okafor says batteries pay back, and Okafor bought one.", None),
        ("Batteries pay back, Daniel Okafor says.", None),
    ],
)
def test_a_credit_given_to_the_show(text: str, credited: str | None) -> None:
    assert credit_the_show(text, person="Daniel Okafor", show="The Margin Call") == credited
    assert credit_the_show(text, person="Daniel Okafor", show=" ") is None
