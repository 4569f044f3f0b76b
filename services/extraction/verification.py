"""Is a written insight true to its passage? Two checks, both must pass:

1. In code: every number, name and date in the insight's text appears in the passage or in what the feed says
   about the episode (show, title, people). Numbers are compared by value, so "90%" matches "ninety percent"
   and "8,000" matches "eight thousand"; names are capitalised words that are not merely sentence-initial.
2. A constrained LLM call reads the passage and the text and answers supported / partly / unsupported with a
   reason. Only "supported" is kept.

Well-written paraphrases pass both; invented numbers, people, products and claims do not.

Who said it is checked here too: a text that credits its claim to a known person who is not a speaker of its
quote (`misattributed`), and, on a transcript without speaker labels, one whose credit nothing in the passage
founds (`unfounded_lead`), which gives its claim to the show instead (`credit_the_show`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from podbrief.reasons import Reason
from podbrief_extraction.grounding import norm_tokens

Verdict = Literal["supported", "partly", "unsupported"]

_UNITS = {
    "zero": 0,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000, "trillion": 10**12}
_DIGITS_SCALE = re.compile(r"(\d+(?:\.\d+)?)\s+(" + "|".join(_SCALES) + r")s?\b", re.IGNORECASE)
_SUFFIX = {"k": 1_000, "m": 1_000_000, "mm": 1_000_000, "b": 1_000_000_000, "bn": 1_000_000_000}
# "one" and "a" are left out on purpose: "one of the first" is not a figure to check.
_FRACTIONS = {"half": (0.5, 50.0), "quarter": (0.25, 25.0), "double": (2.0,), "twice": (2.0,), "triple": (3.0,)}

_NUM = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(k|m|mm|b|bn|x|%|s)?(?![\w])", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'")


def numbers(text: str) -> set[float]:
    """The values of the numbers a text states, in digits or in words ("twelve thousand" -> 12000.0)."""
    text = _fold(text)
    out: set[float] = set()
    for m in _NUM.finditer(text):
        value = float(m.group(1).replace(",", ""))
        suffix = (m.group(2) or "").lower()
        if suffix == "s" and len(m.group(1)) == 4:  # the 1990s
            out.add(value)
            continue
        out.add(value * _SUFFIX.get(suffix, 1))
    words = [w.lower() for w in _WORD.findall(text)]
    expanded: list[str] = []
    for w in words:
        expanded.extend(w.split("-"))
    i = 0
    while i < len(expanded):
        w = expanded[i]
        if w in _FRACTIONS:
            out.update(_FRACTIONS[w])
            i += 1
            continue
        if w not in _UNITS and w not in _TENS:
            i += 1
            continue
        total, current = 0.0, 0.0
        while i < len(expanded):
            w = expanded[i]
            if w in _UNITS:
                current += _UNITS[w]
            elif w in _TENS:
                current += _TENS[w]
            elif (scale := _SCALES.get(w.removesuffix("s"))) is not None:  # "two billions", as speakers say
                current = max(current, 1.0) * scale
                if scale >= 1000:
                    total, current = total + current, 0.0
            elif w == "and" and i + 1 < len(expanded) and (expanded[i + 1] in _UNITS or expanded[i + 1] in _TENS):
                pass
            else:
                break
            i += 1
        out.add(total + current)
    # "1.5 billion", "12 thousand", "3 billions": a digit followed by a scale word.
    for m in _DIGITS_SCALE.finditer(text):
        out.add(float(m.group(1)) * _SCALES[m.group(2).lower()])
    return out


_NAME = re.compile(r"[A-Z][\w'’.&+-]*[\w+]|[A-Z]")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|[\"“(]\s*)$")


def names(text: str) -> set[str]:
    """Capitalised words that name something: not "I", and not a sentence's first word unless it looks like a
    name anyway (an inner capital or digit: "OpenAI", "GPT-4")."""
    text = _fold(text)
    out: set[str] = set()
    for m in _NAME.finditer(text):
        word = m.group(0)
        if word == "I" or (m.start() > 0 and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "'’")):
            continue
        initial = _SENTENCE_START.search(text[: m.start()]) is not None
        if initial and not any(ch.isupper() or ch.isdigit() for ch in word[1:]):
            continue
        token = re.sub(r"['’]s$", "", word)
        for part in norm_tokens(token):
            if not part.isdigit():
                out.add(part)
    return out


@dataclass(frozen=True)
class FactCheck:
    missing_numbers: tuple[float, ...] = ()
    missing_names: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing_numbers and not self.missing_names

    @property
    def reason(self) -> Reason | None:
        if self.missing_numbers:
            return "unsupported_number"
        if self.missing_names:
            return "unsupported_name"
        return None

    def describe(self) -> str:
        parts = []
        if self.missing_numbers:
            parts.append("numbers " + ", ".join(f"{n:g}" for n in self.missing_numbers))
        if self.missing_names:
            parts.append("names " + ", ".join(self.missing_names))
        return "; ".join(parts) + " not in the passage" if parts else "ok"


def _close(value: float, known: Iterable[float]) -> bool:
    return any(abs(value - k) <= 1e-9 + 1e-6 * abs(k) for k in known)


def check_facts(text: str, context: str) -> FactCheck:
    """Every number, name and date in `text` must appear in `context` (the passage plus the episode's
    metadata)."""
    known_numbers = numbers(context)
    known_words = set(norm_tokens(context))
    # Possessives and plurals of names in the context ("Kyutai's", "LLMs").
    known_words |= {w[:-1] for w in known_words if w.endswith("s")}
    missing_numbers = tuple(sorted(n for n in numbers(text) if not _close(n, known_numbers)))
    missing_names = tuple(sorted(n for n in names(text) if n not in known_words and n.rstrip("s") not in known_words))
    return FactCheck(missing_numbers, missing_names)


_ANONYMOUS = re.compile(r"^\s*(?:speaker|spk|unknown)[\s_-]*\w{0,3}\s*$", re.IGNORECASE)


def anonymous_speaker(label: str) -> bool:
    """A diarizer's label ("SPEAKER_01", "Speaker 2"): it says that someone speaks, not who."""
    return _ANONYMOUS.match(label) is not None


def lead_person(text: str, people: Iterable[str]) -> str | None:
    """The known person a text opens with ("Ana Ruiz says", "Ana says", "Ruiz's team found"), by full name,
    first or last name; None when it opens with anyone or anything else, or with a name two people share."""
    head = norm_tokens(text)[:4]

    def opens_with(form: list[str]) -> bool:
        # "Ruiz's" is "ruizs" once normalised.
        return head[: len(form) - 1] == form[:-1] and head[len(form) - 1 : len(form)] in ([form[-1]], [form[-1] + "s"])

    matches: dict[int, set[str]] = {}
    for person in people:
        full = norm_tokens(person)
        if not full:
            continue
        for form in [full] + ([[full[0]], [full[-1]]] if len(full) > 1 else []):
            if opens_with(form):
                matches.setdefault(len(form), set()).add(" ".join(full))
    for length in sorted(matches, reverse=True):
        if len(matches[length]) == 1:
            return next(iter(matches[length]))
        break
    return None


def misattributed(text: str, *, people: Iterable[str], quote_speakers: Iterable[str], passage: str) -> bool:
    """Whether a text credits its claim to the wrong person: it opens with a known person who is not a speaker
    of its quote (when the transcript labels speakers), or, on a transcript without speaker labels (Whisper's),
    with a known person while the passage has another known person introduce themselves ("I'm Jane Roe"). Without
    labels nothing else tells who speaks, so a name the passage does not contradict stands."""
    known = [p for p in dict.fromkeys(people) if norm_tokens(p)]
    lead = lead_person(text, known)
    if lead is None:
        return False
    # A diarizer's labels ("SPEAKER_01") say that someone speaks, not who.
    speakers = {" ".join(norm_tokens(s)) for s in quote_speakers if norm_tokens(s) and not anonymous_speaker(s)}
    if speakers:
        return lead not in speakers
    said = " ".join(norm_tokens(passage))
    for person in known:
        full = norm_tokens(person)
        if " ".join(full) == lead:
            continue
        name = re.escape(full[0]) + (rf"(?: {re.escape(full[-1])})?" if len(full) > 1 else "")
        if re.search(rf"\b(?:im|i am|my name is|this is) {name}\b", said):
            return True
    return False


def named_in(person: str, passage: str) -> bool:
    """Whether the passage names the person: their first or last name, capitalised, as a word (a host's "So
    Dana, what happened?", a guest's "I'm Dana Whitfield")."""
    parts = [p for p in person.split() if len(p) > 1]
    if not parts:
        return False
    return any(re.search(rf"(?<![\w'’]){re.escape(p)}(?![\w])", passage) for p in {parts[0], parts[-1]})


def unfounded_lead(text: str, *, people: Iterable[str], passage: str) -> str | None:
    """On a transcript without speaker labels (Whisper's): the known person a text opens with when the passage
    never names them, so that nothing says they speak; None otherwise. The model, shown the feed's people, credits
    the first of them, mostly the host who asked: on the demo feeds, four of the five credits of a brief went to
    the host for what the guest said."""
    known = {" ".join(norm_tokens(p)): p for p in people if norm_tokens(p)}
    lead = lead_person(text, known.values())
    if lead is None or named_in(known[lead], passage):
        return None
    return known[lead]


_CREDIT_VERB = (
    r"(?:says|said|argues|explains|notes|adds|believes|thinks|claims|warns|predicts|reports|states|stresses|finds"
    r"|found|points out|suggests|emphasi[sz]es|highlights|mentions|shares)"
)
_WH = {"how", "why", "what", "when", "where", "whether", "which", "who"}


def credit_the_show(text: str, *, person: str, show: str) -> str | None:
    """The text with its credit to `person` given to the show instead ("Daniel Okafor says the price fell" ->
    "The Margin Call hears that the price fell", the prompt's form for an unknown speaker), or None when the
    credit is not a plain "<name> says ...", or when the text names the person again. A name written before the
    prompt's own form ("Priya Raman says Pocket Compute hears that ...") loses the name only."""
    forms = sorted({person, person.split()[0], person.split()[-1]}, key=len, reverse=True)
    names = "|".join(re.escape(f) for f in forms)
    head = re.match(
        rf"\s*(?:{names})(?:,[^,]{{1,80}},)?\s+{_CREDIT_VERB}\b[,:]?\s+(?:that\s+)?(?P<rest>\S.*)", text, re.S
    )
    if not show.strip() or head is None:
        return None
    rest = head["rest"]
    on_show = re.escape(show.strip())
    own = rf"(?:{on_show}\s+hears|a\s+guest\s+on\s+{on_show}\s+(?:says|said))\s+(?:that\s+)?(?P<rest>\S.*)"
    inner = re.match(own, rest, re.S | re.IGNORECASE)
    if inner is not None:
        rest = inner["rest"]
    if re.search(rf"(?<![\w'’])(?:{names})(?![\w])", rest):
        return None
    joiner = "" if rest.split()[0].lower().strip(",") in _WH else "that "
    return f"{show.strip()} hears {joiner}{rest}"
