"""The facts check in code: every number, name and date in a written text must be in its passage."""

from __future__ import annotations

import pytest
from podbrief_extraction.verification import check_facts, names, numbers

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
