"""The episode's top points, not its first ones: candidates from every chunk are pooled, sponsor reads and
housekeeping are set aside, duplicates (the same passage seen by two overlapping chunks, or the same point
made twice) are merged, and the rest are ranked by importance, specificity and novelty. Only the head of that
ranking is written up and verified, so the costly calls go to candidates that can still make the top N."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from podbrief.events import Person
from podbrief_extraction.chunking import Sentence
from podbrief_extraction.grounding import content_words, norm_tokens

# Phrases of sponsor reads, ads and show housekeeping. A turn that holds one is promotional as a whole: a
# sponsor read is one long turn, and the claims inside it ("cuts your bill by 40%") are the advertiser's.
_PROMO = re.compile(
    r"\b(?:brought to you by|sponsored by|(?:our|today'?s|this (?:episode'?s|week'?s)) sponsors?\b"
    r"|(?:episode|show|podcast) is (?:also )?(?:supported|presented|powered|underwritten) by"
    r"|support for (?:this|the) (?:episode|show|podcast) comes from"
    r"|\d[\d,]* (?:dollars |euros |pounds )?(?:in|of) (?:free )?credits?\b"
    r"|thanks? (?:again )?to (?:our )?(?:sponsors?|partners?)|a word from our|promo(?:tion)? code|coupon code"
    r"|use (?:the )?code\b|discount code|\d+% off\b|free trial|sign up (?:today|now|at)"
    r"|go to [\w-]+\.(?:com|io|fm|dev|ai|co)\b|visit [\w-]+\.(?:com|io|fm|dev|ai|co)\b"
    r"|[\w-]+\.(?:com|io|fm|dev|ai|co|cloud|app|sh|so|net|org|tv|xyz)/\w+"
    r"|subscribe (?:to|on|wherever)|leave (?:us )?a review|rate (?:and|&) review|(?:our|the) newsletter"
    r"|patreon|join (?:our|the) (?:discord|slack|community)|support the show|become a (?:member|supporter)"
    r"|(?:this|that)'?s (?:all|it) for (?:this|today)|see you next (?:time|week)|thanks for listening"
    r"|welcome (?:back )?to (?:the|another episode|this episode|episode))",
    re.IGNORECASE,
)


def promotional(text: str) -> bool:
    """Whether a passage reads as a sponsor read, an ad or show housekeeping."""
    return _PROMO.search(text) is not None


# Introductions and career small talk: the guest's welcome, "tell us about your background", "I worked on the
# C# compiler", "I got hired at". True and often specific (names, employers, years), so specificity alone ranks
# them high, but not what a listener of the episode wants to take away. A passage with one of these is lowered
# in the ranking, never dropped: a lesson from a career story can still win on its weight.
_WHO = r"(?:i|he|she|we|they)"
_SMALL_TALK = re.compile(
    r"\b(?:welcome (?:to|back)|(?:thanks?|thank you) for (?:coming|having|joining)|(?:excited|happy|glad|great)"
    r" to (?:have|be here|be back)|joining us|with us today|on the show|my name is|introduce yourself"
    r"|(?:tell|give) us (?:a (?:little|bit) )?(?:about|of) (?:yourself|your (?:background|journey|story))"
    r"|(?:your|my|his|her) (?:background|phd|career|first job)|how did you (?:get|end up|come)"
    rf"|{_WHO} (?:was|were|got) (?:hired|contacted|recruited)"
    rf"|{_WHO} (?:worked|was working|used to work) (?:at|on|for|with)\b"
    rf"|{_WHO} studied|{_WHO} grew up|{_WHO} joined|before that,? {_WHO}"
    rf"|{_WHO} started (?:my|his|her|their )?(?:career|out|working|using)"
    rf"|{_WHO}(?:['’]ve| have| has)? been (?:using|doing|working)|co-?founder (?:of|at)"
    r"|(?:went|moved) (?:straight )?from \w+ to)",
    re.IGNORECASE,
)
# Subtracted from a small-talk candidate's score: about one and a half steps of the model's importance (1-5).
SMALL_TALK_PENALTY = 0.2


def small_talk(text: str) -> bool:
    """Whether a passage reads as an introduction or career small talk (see `_SMALL_TALK`)."""
    return _SMALL_TALK.search(text) is not None


@dataclass
class Candidate:
    """A point the model picked in one chunk: its sentences (the quote), headline and weight."""

    chunk: int
    sentences: tuple[Sentence, ...]
    headline: str
    weight: int  # the model's importance, 1-5
    order: int = 0  # position within its chunk's answer (0 = the model's first pick)
    # The model's probability that this is one of the episode's key points (the rate call), where it was asked.
    rating: float | None = None
    # Who is speaking (`speaker_lift`): words of the speaker's turn up to the passage's paragraph end (at most
    # `TURN_WORDS_CAP`; 0 where the transcript names no speaker), and 1 for a guest, 0 for a host, 0.5 for
    # anyone else or unknown.
    turn_words: int = 0
    guest: float = 0.5
    promotional: bool = False
    # The insight as written in the same call that picked it (pick stage), else None (written later).
    text: str | None = None
    kind: str = "claim"
    topics: tuple[str, ...] = ()
    merged: int = 0
    score: float = 0.0
    duplicates: list[Candidate] = field(default_factory=list)

    @property
    def quote(self) -> str:
        return " ".join(s.text for s in self.sentences)

    @property
    def start_s(self) -> float:
        return self.sentences[0].start_s

    @property
    def end_s(self) -> float:
        return max(s.end_s for s in self.sentences)

    @property
    def speaker(self) -> str | None:
        speakers = {s.speaker for s in self.sentences if s.speaker}
        return speakers.pop() if len(speakers) == 1 else None

    def main_sentence(self) -> Sentence:
        """The first sentence of whoever says most of the quote's words (a passage can begin with the end of a
        host's question and go on with the guest's answer)."""
        words: dict[str | None, int] = {}
        for s in self.sentences:
            words[s.speaker] = words.get(s.speaker, 0) + len(s.text.split())
        main = max(words, key=lambda k: words[k])
        return next(s for s in self.sentences if s.speaker == main)


_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+")


def specificity(text: str) -> float:
    """0-1: how concrete a passage is: numbers, named things and length count; a question is not a claim."""
    tokens = norm_tokens(text)
    if not tokens:
        return 0.0
    numbers = sum(1 for t in tokens if any(ch.isdigit() for ch in t))
    numbers += sum(1 for t in tokens if t in _NUMBER_WORDS)
    names = len(_CAPITAL.findall(text))
    words = len(content_words(text))
    score = 0.35 * min(1.0, numbers / 2) + 0.35 * min(1.0, names / 3) + 0.3 * min(1.0, words / 12)
    if text.rstrip().endswith("?"):
        score *= 0.3
    return score


_NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million billion trillion percent half double triple".split()
)


def same_passage(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates quote mostly the same stretch of audio: at least half of the shorter quote."""
    overlap = min(a.end_s, b.end_s) - max(a.start_s, b.start_s)
    shorter = max(1e-6, min(a.end_s - a.start_s, b.end_s - b.start_s))
    return overlap / shorter >= 0.5


def _similar(a: Candidate, b: Candidate, threshold: float) -> bool:
    if same_passage(a, b):
        return True
    return _jaccard(content_words(a.headline), content_words(b.headline)) >= threshold


def _jaccard(x: set[str], y: set[str]) -> float:
    return len(x & y) / len(x | y) if x and y else 0.0


def rank(
    candidates: Sequence[Candidate], *, merge_similarity: float, novelty: float = 0.5, speaker_weight: float = 0.0
) -> list[Candidate]:
    """Candidates best first, duplicates merged into the better twin (which keeps a count of them).

    Score = 0.55 importance + 0.3 specificity of the quote + 0.15 the model's own order; for a rated candidate,
    the rating, moved by who speaks (`speaker_lift`; adding specificity instead put fewer labelled points in
    the dev episodes' top 8: specific-sounding small talk is common). Plus a small bonus for a point the model
    picked in two chunks, less `SMALL_TALK_PENALTY` for an introduction or career small talk (in the quote or
    the written text). Then a greedy pass (maximal marginal relevance) lowers candidates that say what a
    better-ranked one already says, so the top N covers the episode instead of one topic."""
    pool = [c for c in candidates if not c.promotional]
    lift = speaker_lift([c for c in pool if c.rating is not None], speaker_weight)
    for c in pool:
        if c.rating is not None:
            c.score = max(0.0, min(1.0, c.rating)) + lift.get(id(c), 0.0)
        else:
            c.score = 0.55 * (max(1, min(5, c.weight)) - 1) / 4 + 0.3 * specificity(c.quote) + 0.15 / (1 + c.order)
        if small_talk(c.quote) or small_talk(c.text or c.headline):
            c.score -= SMALL_TALK_PENALTY
    kept: list[Candidate] = []
    for c in sorted(pool, key=lambda c: (-c.score, c.start_s)):
        twin = next((k for k in kept if _similar(k, c, merge_similarity)), None)
        if twin is None:
            kept.append(c)
        else:
            twin.merged += 1
            twin.duplicates.append(c)
    for c in kept:
        c.score += 0.05 * min(2, c.merged)
    ordered: list[Candidate] = []
    rest = list(kept)
    while rest:

        def value(c: Candidate) -> float:
            words = content_words(c.headline) | content_words(c.quote)
            overlap = max(
                (_jaccard(words, content_words(o.headline) | content_words(o.quote)) for o in ordered), default=0.0
            )
            return c.score - novelty * overlap

        best = max(rest, key=lambda c: (value(c), -c.start_s))
        ordered.append(best)
        rest.remove(best)
    return ordered


def speaker_lift(rated: Sequence[Candidate], weight: float) -> dict[int, float]:
    """Per rated candidate (by `id`), what who speaks adds to its rating: `weight` times the ratings' standard
    deviation times the sum of two standardised cues, the speaker's role (`guest`) and how long they have held
    the floor (log of `turn_words`). A guest explaining at length is where an interview's points are; a host's
    welcome or a quick back-and-forth rarely is, however the model rates it. Standardised within the episode,
    so a cue that does not vary (a feed without people) adds nothing, and an episode with fewer than two named
    speakers among these passages (a solo show, or Whisper's own transcript) ranks on the rating alone: there,
    a longer turn only means a later passage.

    On the dev episodes (28 labelled points; four ratings of the same candidates, which differ in near-ties)
    the rating alone put 8 to 13 labelled points in the top 8, 10 on average; with both cues at 0.5, 13 to 15,
    14 on average. Each cue alone added less (role 0.5: 12.75; the turn uncapped, 0.5: 12.0)."""
    speakers = {c.main_sentence().speaker for c in rated} - {None}
    if weight <= 0 or len(speakers) < 2:
        return {}
    scale = weight * statistics.pstdev(c.rating or 0.0 for c in rated)
    cues = [_standardised([c.guest for c in rated]), _standardised([math.log1p(c.turn_words) for c in rated])]
    return {id(c): scale * sum(cue[i] for cue in cues) for i, c in enumerate(rated)}


def _standardised(values: Sequence[float]) -> list[float]:
    """Values as z-scores; all 0 where they do not vary."""
    sd = statistics.pstdev(values)
    mean = statistics.fmean(values)
    return [(v - mean) / sd if sd > 1e-9 else 0.0 for v in values]


# Beyond this many words a turn counts as long: past it, how long it has run says nothing more (and a solo
# show, one turn from start to end, does not rank its later passages higher).
TURN_WORDS_CAP = 200


def turn_words(sentences: Sequence[Sentence], index: int, *, opened_before: bool = False) -> int:
    """How long the speaker of `sentences[index]` has held the floor there: the words of their turn (the
    unbroken run of their sentences before it) through the end of its paragraph (its transcript segment), at
    most `TURN_WORDS_CAP`. `opened_before`: the sentences are a window that does not start the episode, so a
    turn that runs back to its first sentence began earlier and counts as long. 0 where the transcript names
    no speaker (Whisper's own output): then the cue does not vary."""
    speaker = sentences[index].speaker
    if not speaker:
        return 0
    lo = index
    while lo > 0 and sentences[lo - 1].speaker == speaker:
        lo -= 1
    if lo == 0 and opened_before:
        return TURN_WORDS_CAP
    hi = index
    while hi + 1 < len(sentences) and sentences[hi + 1].turn == sentences[index].turn:
        hi += 1
    return min(TURN_WORDS_CAP, sum(len(s.text.split()) for s in sentences[lo : hi + 1]))


def guest_value(speaker: str | None, people: Sequence[Person]) -> float:
    """1.0 for a guest of the feed's people (`podcast:person` roles), 0.0 for a host (host, co-host, guest
    host), 0.5 for anyone else, an unnamed speaker or a feed that names no one."""
    role = next(((p.role or "").lower() for p in people if speaker and p.name == speaker), "")
    if "host" in role:
        return 0.0
    return 1.0 if "guest" in role else 0.5


_CLAIM_MARKERS = re.compile(
    r"\b(?:because|the reason|we found|we learned|we realized|the key|important|i think|i believe|prediction"
    r"|predict|will be|should|recommend|advice|the problem|the trick|percent|times (?:faster|cheaper|more)"
    r"|million|billion|thousand|costs?|prices?|cheaper|faster|better than|the biggest|the most|never|always)\b",
    re.IGNORECASE,
)


def _density(sentences: Sequence[Sentence]) -> list[float]:
    """Per sentence, how likely it carries a point: specificity and claim markers ("because", "we found",
    numbers), smoothed with its neighbours so that a dense passage scores as a whole. Questions, backchannel,
    small talk and sponsor phrases score low."""

    def raw(text: str) -> float:
        if len(text.split()) < 5:
            return 0.0
        value = specificity(text) + 0.15 * len(_CLAIM_MARKERS.findall(text))
        if small_talk(text) or promotional(text):
            value *= 0.3
        return value * 0.2 if text.rstrip().endswith("?") else value

    scores = [raw(s.text) for s in sentences]
    return [
        scores[i] + 0.5 * (scores[i - 1] if i else 0.0) + 0.5 * (scores[i + 1] if i + 1 < len(scores) else 0.0)
        for i in range(len(scores))
    ]


def dense_sentences(sentences: Sequence[Sentence], keep: float) -> set[int]:
    """The numbers of the sentences most likely to carry a point (`_density`), about `keep` of the chunk's
    words, so that a dense passage is kept whole. Lets the select call read part of a window when the model is
    too slow to read it all."""
    if keep >= 1.0 or not sentences:
        return {s.number for s in sentences}
    smooth = _density(sentences)
    total = sum(len(s.text.split()) for s in sentences)
    shown: set[int] = set()
    words = 0
    for i in sorted(range(len(sentences)), key=lambda i: (-smooth[i], i)):
        if words >= keep * total:
            break
        shown.add(sentences[i].number)
        words += len(sentences[i].text.split())
    return shown


@dataclass(frozen=True)
class Passage:
    """A passage of a chunk that code proposes as a point: sentence numbers `first` to `last` around `key`."""

    first: int
    last: int
    key: int


def key_passages(sentences: Sequence[Sentence], count: int, *, width: int = 1, spacing: int = 3) -> list[Passage]:
    """The chunk's `count` passages densest in claims (`_density`), best first: each its key sentence and
    `width` sentences on either side, no two keys closer than `spacing + 1` sentences. On the first 30 minutes
    of the labelled dev episodes, three per window held 8 of the 13 labelled key points, the 1.5B model's own
    picks from the same windows 5 (see the extraction README), so the model writes and weighs these instead
    of searching the whole window."""
    if count <= 0 or not sentences:
        return []
    smooth = _density(sentences)
    chosen: list[int] = []
    for i in sorted(range(len(sentences)), key=lambda i: (-smooth[i], i)):
        if len(chosen) >= count or smooth[i] <= 0.0:
            break
        if any(abs(i - j) <= spacing for j in chosen):
            continue
        chosen.append(i)
    last = len(sentences) - 1
    return [
        Passage(sentences[max(0, i - width)].number, sentences[min(last, i + width)].number, sentences[i].number)
        for i in chosen
    ]


def episode_cap(duration_s: float, *, max_insights: int, minutes_per_insight: float) -> int:
    """How many insights an episode can give: `max_insights`, fewer for a short episode (at least 1)."""
    if minutes_per_insight <= 0 or duration_s <= 0:
        return max_insights
    return max(1, min(max_insights, math.ceil(duration_s / 60 / minutes_per_insight)))
