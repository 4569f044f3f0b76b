"""Written texts: cut to whole sentences without filler (`tidy_text`), and the quote moved onto the sentences
a text retells (`anchor_quote`), for a model that writes about a sentence next to the one it was given, and
a kept quote cut to its point: without the backchannel it opens or ends with or the questions that follow it
(`on_the_point`)."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace

from podbrief_extraction.chunking import Sentence
from podbrief_extraction.grounding import content_words, norm_tokens

# A sentence ends at a stop followed by a space or the end: "1.1 million", "GPT 5.2" and "example.com" go on.
_SENTENCE = re.compile(r"\S.*?[.!?]+[\"'”’)]*(?=\s|$)")


# A "why it matters" that says nothing ("This is important for homeowners."): left out of the text.
_FILLER = re.compile(
    r"^(?:this|that|it)(?: insight)? (?:is|was) (?:very |especially |particularly |highly )?"
    r"(?:important|significant|crucial|relevant|useful|helpful|valuable|interesting|noteworthy|worth knowing)"
    r"(?: (?:for|to) [\w\s,'-]+)?[.!]$",
    re.IGNORECASE,
)


def tidy_text(text: str, max_sentences: int = 3) -> str | None:
    """A written text cut to at most `max_sentences` complete sentences, without filler after the first; None
    when there is no complete one (an answer cut off by the length bound)."""
    text = " ".join(text.split())
    sentences = [m.group(0).strip() for m in _SENTENCE.finditer(text)]
    if not sentences:
        return None
    sentences = sentences[:1] + [x for x in sentences[1:] if not _FILLER.match(x)]
    return " ".join(sentences[:max_sentences])


def text_words(text: str, ignore: Collection[str] = ()) -> set[str]:
    """The content words of a written text that its source sentences should hold: less the words of the names
    in `ignore` (people's names, which a text says and its speaker's own sentences rarely do)."""
    return content_words(text) - {w for name in ignore for w in norm_tokens(name)}


def shared_words(sentences: Sequence[Sentence], wanted: set[str]) -> int:
    """How many of `wanted` the sentences hold."""
    return len(content_words(" ".join(s.text for s in sentences)) & wanted)


def anchor_quote(
    sentences: Sequence[Sentence],
    text: str,
    first: int,
    last: int,
    max_sentences: int,
    reach: int = 3,
    *,
    ignore: Collection[str] = (),
) -> tuple[int, int]:
    """The sentence range (1-based) that best supports a text written in the same call as its range: a model
    that writes and points at once sometimes points a sentence or two off, and sometimes at another part of the
    window altogether (the text retells a story told minutes later; the range is the guest's introduction).

    Ranges of up to `max_sentences` are scored on how many of the text's content words they contain (less
    `ignore`: the people's names, which a text says and its speaker's own sentences rarely do), less a small
    charge per word, so a short quip that shares one word never wins over the sentence that states the point.
    Within `reach` sentences of the model's range the best wins, the model's own on ties. A range further away
    wins only when it is clearly the text's source: it holds at least 40% of the text's words (and 3), twice
    as many as the best near range, and 2 more. Whether the text is true of the range is the verifier's
    question; this only decides which sentences it is asked about."""
    wanted = text_words(text, ignore)
    if not wanted:
        return first, last

    def shared(lo: int, hi: int) -> int:
        return shared_words(sentences[lo - 1 : hi], wanted)

    def score(lo: int, hi: int) -> float:
        return shared(lo, hi) - 0.05 * sum(len(s.text.split()) for s in sentences[lo - 1 : hi])

    def best_in(lo_from: int, lo_to: int, start: tuple[int, int] | None) -> tuple[int, int]:
        best, best_score = start or (lo_from, lo_from), score(*start) if start else float("-inf")
        for lo in range(max(1, lo_from), min(len(sentences), lo_to) + 1):
            for hi in range(lo, min(len(sentences), lo + max_sentences - 1) + 1):
                value = score(lo, hi)
                if value > best_score + 1e-9:
                    best, best_score = (lo, hi), value
        return best

    near = best_in(first - reach, last + reach, (first, last))
    far = best_in(1, len(sentences), None)
    near_shared, far_shared = shared(*near), shared(*far)
    if (
        far != near
        and far_shared >= max(3, 0.4 * len(wanted))
        and far_shared >= 2 * near_shared
        and far_shared >= near_shared + 2
    ):
        return far
    return near


# A sentence that asks: a question mark, perhaps inside closing quotes or brackets.
_QUESTION_END = re.compile(r"\?[\"'”’)\]]*\s*$")
_FRAGMENT_END = re.compile(r"(?<=[.!?…])\s+")


# Words that only acknowledge ("Yeah, for sure.", "Right.", "Sure, sure."): a sentence of nothing else says
# that someone listens, not what they claim. "No" is not among them: it answers.
_BACKCHANNEL = frozenset(
    "yeah yes yep yup right sure exactly okay ok well so um uh umm mm hmm mhm mm-hmm uh-huh totally absolutely "
    "definitely indeed oh wow cool great true correct agreed for of course i mean fair enough got it gotcha".split()
)


def backchannel(text: str) -> bool:
    """A sentence of at most four words that only acknowledges ("Yeah.", "Right.", "Yeah, for sure.")."""
    words = re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())
    return 0 < len(words) <= 4 and all(w in _BACKCHANNEL for w in words) and not _QUESTION_END.search(text)


def on_the_point(sentences: Sequence[Sentence]) -> tuple[Sentence, ...]:
    """A quote's sentences less the backchannel it opens or ends with ("Right. The price has fallen by 90%")
    and the questions it ends with: a passage is its best sentence with one on either side, the one before is
    often an answer's "Yeah." and the one after the host's next question ("How fast is it on a normal
    phone?"), neither of them the point nor, often, said by whoever made it. At least one sentence stays. A
    question that opens a quote stays: the answer after it may need it ("Is it faster?" "Twice as fast.")."""
    out = list(sentences)
    while len(out) > 1 and backchannel(out[0].text):
        out.pop(0)
    while len(out) > 1 and (_QUESTION_END.search(out[-1].text) or backchannel(out[-1].text)):
        out.pop()
    # A fragment too short to be a sentence of its own ("Right.") opens the sentence it was joined to
    # (`chunking.split_sentences`): it goes too, and the time stays the sentence's, a second early at most.
    fragments = _FRAGMENT_END.split(out[0].text)
    lead = 0
    while lead < len(fragments) - 1 and backchannel(fragments[lead]):
        lead += 1
    if lead:
        out[0] = replace(out[0], text=" ".join(fragments[lead:]))
    return tuple(out)
