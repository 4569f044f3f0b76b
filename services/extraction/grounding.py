"""Quality gates in code: a quote must be found in the chunk it came from (fuzzy, token-aligned), its times
come from the matched words or segments, and vague, pronoun-led or off-topic texts are refused. The prompts ask
for the same things; these gates make sure of them."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from podbrief.events import Segment
from podbrief.reasons import Reason

_APOS = re.compile(r"['’`]")
_NONWORD = re.compile(r"[^\w\s]")


def norm_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _APOS.sub("", text)
    return _NONWORD.sub(" ", text).split()


@dataclass(frozen=True)
class Token:
    norm: str
    surface: str  # the original word, punctuation included, for the verbatim quote
    start_s: float
    end_s: float
    speaker: str | None


def tokens_of(segments: Sequence[Segment]) -> list[Token]:
    """Normalised words with their times: from word timestamps when present, else the segment's bounds."""
    out: list[Token] = []
    for seg in segments:
        if seg.words:
            pieces = [(w.text.strip(), w.start_s, w.end_s) for w in seg.words]
        else:
            pieces = [(word, seg.start_s, seg.end_s) for word in seg.text.split()]
        for surface, start, end in pieces:
            norms = norm_tokens(surface)
            for k, n in enumerate(norms):
                # A surface like "U.S." yields several tokens; the first carries the surface form.
                out.append(Token(n, surface if k == 0 else "", start, end, seg.speaker))
    return out


@dataclass(frozen=True)
class Grounding:
    score: float
    quote: str  # the transcript's own words for the matched span
    start_s: float
    end_s: float
    speaker: str | None


def ground(quote: str, tokens: Sequence[Token]) -> Grounding | None:
    """The transcript span that best matches `quote`, scored 0-1 (difflib ratio over normalised tokens)."""
    q = norm_tokens(quote)
    if not q or not tokens:
        return None
    hay = [t.norm for t in tokens]
    n = len(q)
    sm = difflib.SequenceMatcher(None, hay, q, autojunk=False)
    # The longest common runs anchor the candidate spans; a handful is enough, and keeps a long chunk cheap.
    blocks = sorted((blk for blk in sm.get_matching_blocks() if blk.size > 0), key=lambda blk: -blk.size)[:6]
    anchors = {max(0, blk.a - blk.b) for blk in blocks}
    if not anchors:
        return None
    best: tuple[float, int, int] | None = None
    scorer = difflib.SequenceMatcher(None, autojunk=False)
    scorer.set_seq2(q)
    slack = max(2, n // 5)
    for anchor in sorted(anchors):
        for start in range(max(0, anchor - slack), min(len(hay), anchor + slack + 1)):
            for length in range(max(1, n - slack), n + slack + 1):
                end = min(len(hay), start + length)
                scorer.set_seq1(hay[start:end])
                if best is not None and scorer.quick_ratio() <= best[0] + 1e-9:
                    continue
                score = scorer.ratio()
                if best is None or score > best[0] + 1e-9:
                    best = (score, start, end)
    if best is None:
        return None
    score, start, end = best
    # Trim unmatched words at the edges of the span so times and the verbatim quote are tight.
    scorer.set_seq1(hay[start:end])
    blocks = [b for b in scorer.get_matching_blocks() if b.size > 0]
    if blocks:
        end = start + blocks[-1].a + blocks[-1].size
        start = start + blocks[0].a
    span = tokens[start:end]
    surface = " ".join(t.surface for t in span if t.surface)
    speakers = {t.speaker for t in span if t.speaker}
    return Grounding(
        round(score, 4),
        surface,
        span[0].start_s,
        max(t.end_s for t in span),
        speakers.pop() if len(speakers) == 1 else None,
    )


# A text framed as a description of the show ("In this episode, ...") says nothing by itself.
_EPISODE_FRAME = re.compile(
    r"^(?:in )?this (?:episode|podcast|segment|transcript|conversation|discussion|show)\b", re.IGNORECASE
)
# Verbs that announce a topic instead of stating a claim ("X discusses Y").
_ANNOUNCE = re.compile(
    r"\b(?:discuss(?:es|ed|ing)?|talk(?:s|ed|ing)? about|chat(?:s|ted)? about|touch(?:es|ed)? on"
    r"|(?:is|was) about(?!\s+(?:to\b|\d|half|twice|a (?:third|quarter|tenth)"
    r"|[a-z]+ (?:percent|times|hundred|thousand|million|billion)))"
    r"|go(?:es)? over|went over|shares? (?:his|her|their) (?:thoughts|views|insights|experience)"
    r"|explor(?:es|ed|ing)|delves? into|highlights? the importance"
    # A question put to a guest is not what anyone claims: "X asks Y about Z".
    # ("Kennedy asks Americans to give" is a request, and a claim.)
    r"|ask(?:s|ed|ing)?\s+(?:\w+\s+){0,3}?(?:about|whether|if)|wonder(?:s|ed|ing)?)\b",
    re.IGNORECASE,
)
# What turns an announcement into a claim: a figure, or a clause that says what about the topic.
_CLAIM_CLAUSE = re.compile(
    r"\d|\b(?:that|which|because|since|so|how|why|by|means|making|saying|arguing|noting|showing|warning"
    r"|percent|half|twice|double|times|hundred|thousand|million|billion)\b",
    re.IGNORECASE,
)
_FIRST_SENTENCE = re.compile(r".+?(?:[.!?](?=\s|$)|$)", re.DOTALL)


def topic_only(text: str) -> bool:
    """Whether a text names a topic instead of stating a claim: framed as a description of the episode, or a
    first sentence (the claim, in the brief's shape) that only announces what someone discusses. "Alexandre
    Défossez discusses Moshi." is topic only; "Alexandre Défossez discusses how Moshi replies within 200 ms."
    states a claim, and whether it is true is the verifier's question, not a matter of wording."""
    text = text.strip()
    if _EPISODE_FRAME.match(text):
        return True
    first = _FIRST_SENTENCE.match(text)
    sentence = first.group(0) if first else text
    announce = _ANNOUNCE.search(sentence)
    if announce is None:
        return False
    # Only as the sentence's own verb: "Matt Colyer says merchants reach buyers through Inbox, which lets them
    # ask questions about returns" states a claim before its clause mentions asking.
    if _CLAIM_CLAUSE.search(sentence[: announce.start()]):
        return False
    # However long the list of topics ("the benefits and drawbacks of X, including Y and Z"), it is a topic.
    return _CLAIM_CLAUSE.search(sentence[announce.end() :]) is None


_PRONOUN_START = re.compile(
    r"^(?:he|she|they|it|this|that|these|those|we|i|you|his|her|their|its|our)\b", re.IGNORECASE
)


_STOP = frozenset(
    (
        "a an and are as at be been but by can could did do does for from had has have he her his i if "
        "in into is it its just like more most my not of on or our out she so some than that the their "
        "them then there these they this those to too up very was we were what when which who will with "
        "would you your about also because "
    ).split()
)


def is_content_word(word: str) -> bool:
    """A normalised word that carries meaning: not a stop word, longer than two letters."""
    return word not in _STOP and len(word) > 2


def content_words(text: str) -> set[str]:
    return {w for w in norm_tokens(text) if is_content_word(w)}


def repetitive(words: Sequence[str], *, n: int = 5) -> bool:
    """Whether a text says the same run of `n` words twice, one of them a content word: the loop a small model
    falls into ("He became his best friend's wife. He became his best friend's wife."). A synthesis of two or
    three sentences has no reason to, and a speaker's "you know, you know" is shorter than `n`."""
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen and any(is_content_word(w) for w in gram):
            return True
        seen.add(gram)
    return False


def specificity_problem(text: str, *, min_words: int, context: str | None = None) -> Reason | None:
    """Why an insight's text is not a specific, self-contained claim (a drop reason), or None. With `context`,
    a text sharing few content words with it is about something else (a small model's invention)."""
    words = norm_tokens(text)
    if len(words) < min_words:
        return "too_short"
    if repetitive(words):
        return "repetitive"
    if topic_only(text):
        return "vague"
    if _PRONOUN_START.match(text.strip()):
        return "no_referent"
    # A question is not a claim: "What does it cost to build one?" tells the reader nothing.
    if text.strip().endswith("?"):
        return "question"
    if context is not None:
        mine = content_words(text)
        shared = mine & content_words(context)
        if not shared or len(shared) < 0.25 * len(mine):
            return "unsupported_text"
    return None


def copied(text: str, quote: str, *, run: int = 12) -> bool:
    """Whether a text copies its quote instead of restating it: `run` or more of the quote's words in a row
    ("Mike Tamir says our approach as unembarrassed with how pragmatic we are on these issues ...")."""
    a, b = norm_tokens(text), norm_tokens(quote)
    if len(a) < run or len(b) < run:
        return False
    match = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size >= run
