"""Transcript -> the episode's top insights, in three kinds of LLM call, each budgeted:

1. candidates, from every chunk. By default (`quality.candidates="passages"`) code proposes each chunk's
   passages densest in claims (`selection.key_passages`), and the model rates each one: a yes/no question (is
   it one of the episode's top takeaways?) whose probability of yes, from the answer token's log-probabilities,
   is the rating (prompt v6's rate call, one output token; with prompt v5 the model writes every passage with
   an importance instead). Otherwise a select (or pick) call per chunk: the model reads the chunk's numbered
   sentences and answers, per point worth knowing, the sentence range that states it, a short headline (or the
   insight itself) and an importance. Either way the quote is never generated, it is the transcript's own
   sentences.
2. The episode-level pass (`selection.rank`, in code): candidates from every chunk pooled, sponsor reads and
   housekeeping set aside, duplicates merged, ranked by the rating moved by who speaks (a guest well into a
   long turn over a host's aside: `selection.speaker_lift`), or by importance and specificity, and novelty.
3. write + verify (per candidate, best first, only as many as can still make the top N): the model writes a
   2-sentence synthesis from the passage around the quote (a code-proposed quote then moves to the sentences
   the text retells, `anchor_quote`); code checks that every number and name in it is in the passage, and a
   second constrained call answers supported / partly / unsupported. Only supported texts are kept (or, with
   `text_fallback=quote`, the quote itself when it can stand alone), and not one whose moved quote lands on
   a kept insight's sentences (a duplicate: the next candidate takes its place).

Calls of one stage run back to back, so the stage's system prompt stays in the server's prompt cache.

A chunk whose answer stays invalid after one repair (or that the endpoint rejects as a bad request) counts as
failed and the episode completes with the others. An endpoint that is down raises RetryableError, so the
whole episode is retried later by the bus."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from podbrief.errors import PermanentError
from podbrief.events import Chapter, Insight, InsightKind, Person, Transcript, insight_id
from podbrief.reasons import Reason
from podbrief_extraction.adapters.llm import Structured, Usage
from podbrief_extraction.answers import (
    KINDS,
    PickAnswer,
    PickedPoint,
    Point,
    SelectAnswer,
    VerifyAnswer,
    WriteAnswer,
    pick_schema,
    select_schema,
    verify_schema,
    write_schema,
)
from podbrief_extraction.chunking import Chunk, Sentence, chunk_transcript, token_budget
from podbrief_extraction.grounding import content_words, copied, ground, specificity_problem, tokens_of
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.prompts import PromptSet
from podbrief_extraction.prompts import load as load_prompts
from podbrief_extraction.selection import (
    Candidate,
    dense_sentences,
    episode_cap,
    guest_value,
    key_passages,
    promotional,
    rank,
    same_passage,
    turn_words,
)
from podbrief_extraction.settings import ExtractionSettings
from podbrief_extraction.texts import (
    anchor_quote,
    on_the_point,
    shared_words,
    text_words,
    tidy_text,
)
from podbrief_extraction.verification import (
    anonymous_speaker,
    check_facts,
    credit_the_show,
    misattributed,
    unfounded_lead,
)
from pydantic import BaseModel

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
STAGES = ("select", "rate", "write", "verify")
# Answer budgets (tokens): a point is ~30 tokens, an insight ~80, a verdict ~30.
SELECT_TOKENS_PER_POINT = 48
# A point picked and written in one call: its range, a 50-word insight, kind, topics, importance.
PICK_TOKENS_PER_POINT = 150
WRITE_MAX_TOKENS = 200
VERIFY_MAX_TOKENS = 64


class StructuredLLM(Protocol):
    model: str

    @property
    def restates(self) -> bool:
        """Whether `complete_json(..., restate=True)` penalises repeating the prompt (llama.cpp's DRY sampler)."""
        ...

    async def complete_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        model: type[T],
        *,
        schema_name: str = ...,
        max_tokens: int | None = ...,
        stage: str = ...,
        restate: bool = ...,
    ) -> Structured[T]: ...

    async def yes_probability(self, messages: list[dict[str, str]], *, stage: str = ...) -> tuple[float, Usage]: ...


@dataclass
class Decision:
    """What happened to one candidate: for logs, the evaluation and anyone asking why a point is missing."""

    chunk: int
    start_s: float
    headline: str
    quote: str
    score: float
    outcome: str  # kept, kept_quote, or the reason it was dropped
    text: str = ""
    verdict: str | None = None
    reason: str | None = None
    weight: int | None = None  # the model's importance, 1-5
    kind: str | None = None
    rating: float | None = None  # the model's probability that it is a top takeaway (the rate call)


@dataclass
class ExtractionResult:
    insights: list[Insight]
    chunks_total: int = 0
    chunks_failed: int = 0
    dropped: Counter[Reason] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    stages: dict[str, Usage] = field(default_factory=lambda: {s: Usage() for s in STAGES})
    model: str = ""
    prompt_version: str = ""
    status: Literal["done", "skipped"] = "done"
    candidates: int = 0
    text_from_quote: int = 0
    # Written texts that named a topic instead of a claim, asked for once more.
    rewrites: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    decisions: list[Decision] = field(default_factory=list)
    detail: str | None = None

    def add_usage(self, stage: str, usage: Usage) -> None:
        self.usage.add(usage)
        self.stages[stage].add(usage)


Progress = Callable[[int, int | None], Awaitable[None] | None]


def people_line(people: Sequence[Person], speakers: Sequence[str]) -> str:
    """ "Jane Doe (host), John Roe (guest, Acme)": the feed's people, then speakers it does not name."""
    out: list[str] = []
    seen: set[str] = set()
    for p in people:
        # The role only: a person tag's group is a production taxonomy ("cast", "writing"), not an employer.
        out.append(f"{p.name} ({p.role})" if p.role else p.name)
        seen.add(p.name.casefold())
    for s in speakers:
        if s.casefold() not in seen:
            out.append(s)
            seen.add(s.casefold())
    return ", ".join(out)


def said_by(candidate: Candidate) -> str | None:
    """The one named speaker of a candidate's quote, when the transcript labels it with a name (not a
    diarizer's "SPEAKER_01")."""
    names = {s.speaker for s in candidate.sentences if s.speaker and not anonymous_speaker(s.speaker)}
    return names.pop() if len(names) == 1 else None


def speaker_of(candidate: Candidate, people: Sequence[Person]) -> str | None:
    """The quote's speaker; without one in the transcript, the episode's only named person, if there is one."""
    if candidate.speaker:
        return candidate.speaker
    if len(people) == 1:
        return people[0].name
    return None


class Extractor:
    def __init__(
        self,
        llm: StructuredLLM,
        settings: ExtractionSettings,
        metrics: ExtractionMetrics | None = None,
        prompts: PromptSet | None = None,
    ) -> None:
        self.llm = llm
        self.settings = settings
        self.metrics = metrics or ExtractionMetrics.create()
        self.prompts = prompts or load_prompts(settings.prompt_version)
        self.budget = token_budget(settings.chunking.max_tokens, settings.llm.context_tokens, settings.llm.max_tokens)

    def chunks(self, transcript: Transcript, chapters: Sequence[Chapter] = ()) -> list[Chunk]:
        c = self.settings.chunking
        return list(
            chunk_transcript(
                transcript,
                window_s=c.window_s,
                max_tokens=self.budget,
                overlap_s=c.overlap_s,
                chapters=chapters,
                max_chunks=c.max_chunks,
            )
        )

    def language_supported(self, language: str | None) -> bool:
        if language is None or self.settings.unsupported_language == "process":
            return True
        return language.split("-")[0].lower() in {x.lower() for x in self.settings.supported_languages}

    async def extract(
        self,
        transcript: Transcript,
        *,
        episode_id: uuid.UUID,
        show: str,
        title: str,
        chapters: Sequence[Chapter] = (),
        people: Sequence[Person] = (),
        progress: Progress | None = None,
    ) -> ExtractionResult:
        result = ExtractionResult([], model=self.llm.model, prompt_version=self.prompts.label)
        if not self.language_supported(transcript.language):
            result.status, result.detail = "skipped", f"unsupported language {transcript.language}"
            return result
        q = self.settings.quality
        chunks = self.chunks(transcript, chapters)
        result.chunks_total = len(chunks)
        cap = episode_cap(
            transcript.duration_s, max_insights=q.max_insights_per_episode, minutes_per_insight=q.minutes_per_insight
        )
        attempts = math.ceil(cap * q.attempts_per_insight)
        steps = {"done": 0, "total": len(chunks) + 2 * cap}

        async def step(n: int = 1) -> None:
            steps["done"] += n
            if progress is not None:
                maybe = progress(steps["done"], max(steps["total"], steps["done"]))
                if maybe is not None:
                    await maybe

        ctx = _EpisodeContext(show=show, title=title, people=tuple(people), chunks=chunks)
        pool = await self.select_candidates(ctx, result, step)
        result.candidates = len(pool)
        for c in pool:
            if c.promotional:
                self._drop(result, c, "promotional")
        ranked = self._rank(pool, result)
        if self.drafts:
            steps["total"] = len(chunks) + len(ranked) + 2 * min(len(ranked), attempts)
            ranked = await self._weigh(ranked, ctx, result, step)
        # Each candidate tried counts two steps (its write, which is only a check when already written, and its
        # verification).
        steps["total"] = steps["done"] + 2 * min(len(ranked), attempts)
        kept: list[tuple[Candidate, Insight]] = []
        queue = list(ranked)
        while queue and len(kept) < cap and attempts > 0:
            batch = queue[: min(cap - len(kept), attempts)]
            del queue[: len(batch)]
            attempts -= len(batch)
            taken = [c for c, _ in kept]
            for cand, insight in await self._write_and_verify(batch, ctx, episode_id, result, step, taken=taken):
                if insight is not None:
                    kept.append((cand, insight))
        for c in queue:
            self._drop(result, c, "episode_cap")
        # The best first was the order of work; the episode's insights go out in the order they were said.
        kept.sort(key=lambda pair: (pair[1].start_s, pair[1].end_s))
        seen: set[uuid.UUID] = set()
        for _, insight in kept:
            if insight.insight_id not in seen:
                seen.add(insight.insight_id)
                result.insights.append(insight)
        self.metrics.insights_kept.inc(len(result.insights))
        return result

    async def select_only(
        self, transcript: Transcript, *, show: str, title: str, chapters: Sequence[Chapter] = ()
    ) -> ExtractionResult:
        """Stage 1 alone (the benchmark's unit of work): chunks and their select calls, no write or verify."""
        result = ExtractionResult([], model=self.llm.model, prompt_version=self.prompts.label)
        chunks = self.chunks(transcript, chapters)
        result.chunks_total = len(chunks)
        ctx = _EpisodeContext(show=show, title=title, people=(), chunks=chunks)
        result.candidates = len(await self.select_candidates(ctx, result))
        return result

    # Stage 1 -----------------------------------------------------------------------------------------------
    async def select_candidates(
        self, ctx: _EpisodeContext, result: ExtractionResult, step: Callable[[], Awaitable[None]] | None = None
    ) -> list[Candidate]:
        """Every chunk's candidates: the passages code proposes (`drafts`), or the points the model picks, the
        chunks' calls gathered (the client's semaphore bounds requests in flight, so vLLM can batch a whole
        episode). Failed chunks are counted on `result`."""

        async def one(chunk: Chunk) -> list[Candidate] | None:
            try:
                return await self._select(chunk, ctx, result)
            finally:
                if step is not None:
                    await step()

        pool: list[Candidate] = []
        if self.drafts:
            for chunk in ctx.chunks:
                pool.extend(self._passages(chunk, result))
                self.metrics.chunks.labels("ok").inc()
                if step is not None:
                    await step()
            return pool
        answers = await asyncio.gather(*(one(c) for c in ctx.chunks))
        for found in answers:
            if found is None:
                result.chunks_failed += 1
                self.metrics.chunks.labels("failed").inc()
                continue
            self.metrics.chunks.labels("ok").inc()
            pool.extend(found)
        return pool

    @property
    def drafts(self) -> bool:
        """Whether code proposes the candidates (`quality.candidates="passages"`), which the model weighs before
        the ranking (`_weigh`: rated, or written up with an importance), instead of picking them in a call per
        chunk."""
        return self.settings.quality.candidates == "passages"

    @property
    def rates(self) -> bool:
        """Whether the model rates each code-proposed passage (the prompt version's rate stage: one short yes/no
        call per passage, its probability of yes the rating) and only the ranking's head is written, instead of
        writing every passage with an importance before the ranking."""
        return self.drafts and self.prompts.rate is not None

    @property
    def picks(self) -> bool:
        """Whether the chunk's call also writes the insights (the prompt version's pick stage)."""
        return self.settings.quality.write_in_select and self.prompts.pick is not None

    def system_prompts(self) -> list[str]:
        """The system prompts every episode's calls start with: the chunk's call (pick, or select and write; with
        code-proposed passages, the rate call and write) and the verifier's. (The pick stage's occasional
        rewrite uses the write prompt, read when first needed.)"""
        if self.drafts:
            stages = [self.prompts.rate if self.rates else None, self.prompts.write]
        elif self.picks:
            stages = [self.prompts.pick]
        else:
            stages = [self.prompts.select, self.prompts.write]
        if self.settings.quality.verify:
            stages.append(self.prompts.verify)
        return [s.system for s in stages if s is not None]

    def select_request(
        self, chunk: Chunk, *, show: str, title: str, people: Sequence[Person] = ()
    ) -> tuple[list[dict[str, str]], dict[str, Any], int]:
        """The chunk's call: messages, the enforced JSON schema and the answer's token budget."""
        q = self.settings.quality
        shown = dense_sentences(chunk.sentences, q.select_keep) if q.select_keep < 1.0 else None
        transcript = chunk.numbered_text(shown)
        if self.picks:
            assert self.prompts.pick is not None
            speakers = list(dict.fromkeys(s.speaker for s in chunk.sentences if s.speaker))
            least = min(q.min_points_per_chunk, q.max_points_per_chunk, len(chunk.sentences) // q.sentences_per_point)
            messages = self.prompts.pick.render(
                show=show,
                title=title,
                people=people_line(people, speakers),
                labelled=bool(speakers),
                transcript=transcript,
                min_points=least,
                max_points=q.max_points_per_chunk,
            )
            schema = pick_schema(q.max_points_per_chunk, len(chunk.sentences), q.max_text_chars, min_points=least)
            return messages, schema, PICK_TOKENS_PER_POINT * q.max_points_per_chunk + 16
        messages = self.prompts.select.render(
            show=show, title=title, transcript=transcript, max_points=q.max_points_per_chunk
        )
        schema = select_schema(q.max_points_per_chunk, len(chunk.sentences))
        return messages, schema, SELECT_TOKENS_PER_POINT * q.max_points_per_chunk + 16

    async def _select(self, chunk: Chunk, ctx: _EpisodeContext, result: ExtractionResult) -> list[Candidate] | None:
        q = self.settings.quality
        sentences = chunk.sentences
        if not sentences:
            return []
        messages, schema, max_tokens = self.select_request(chunk, show=ctx.show, title=ctx.title, people=ctx.people)
        points: list[Point | PickedPoint]
        try:
            if self.picks:
                pick = await self.llm.complete_json(
                    messages, schema, PickAnswer, schema_name="points", max_tokens=max_tokens, stage="select"
                )
                usage, points = pick.usage, list(pick.value.p)
            else:
                sel = await self.llm.complete_json(
                    messages, schema, SelectAnswer, schema_name="points", max_tokens=max_tokens, stage="select"
                )
                usage, points = sel.usage, list(sel.value.p)
        except PermanentError as exc:
            spent = getattr(exc, "usage", None)
            if isinstance(spent, Usage):
                result.add_usage("select", spent)
            log.warning(
                "chunk failed",
                extra={"chunk": chunk.index, "reason": exc.reason, "error": str(exc)[:300]},
            )
            return None
        result.add_usage("select", usage)
        promo_turns = _promotional_turns(chunk)
        names = {p.name for p in ctx.people} | {s.speaker for s in sentences if s.speaker}
        out: list[Candidate] = []
        for order, point in enumerate(points[: q.max_points_per_chunk]):
            first, last = sorted((max(1, min(len(sentences), point.s)), max(1, min(len(sentences), point.e))))
            if isinstance(point, PickedPoint):
                first, last = anchor_quote(sentences, point.t, first, last, q.max_quote_sentences, ignore=names)
            last = min(last, first + q.max_quote_sentences - 1)
            # A one-line fragment ("Exactly.") is widened by a sentence so the quote can carry a claim.
            while last < len(sentences) and sum(len(s.text.split()) for s in sentences[first - 1 : last]) < (
                q.min_quote_words
            ):
                if last - first + 1 >= q.max_quote_sentences:
                    break
                last += 1
            picked = tuple(sentences[first - 1 : last])
            if q.select_keep < 1.0:
                # Only what the model was shown: a range across a gap keeps its shown sentences.
                shown = dense_sentences(sentences, q.select_keep)
                picked = tuple(s for s in picked if s.number in shown) or picked
            if isinstance(point, PickedPoint):
                written: str | None = " ".join(point.t.split())
                # A written point's headline is its claim: the first sentence of its text.
                headline = tidy_text(point.t, 1) or " ".join(point.t.split())
                kind, topics = point.k, tuple(point.tp)
            else:
                written, headline, kind, topics = None, " ".join(point.h.split()), "claim", ()
            cand = Candidate(
                chunk=chunk.index,
                sentences=picked,
                headline=headline[:200],
                weight=max(1, min(5, point.w)),
                order=order,
                promotional=any(s.turn in promo_turns for s in picked),
                text=written,
                kind=kind,
                topics=topics,
            )
            if self._too_short(picked):
                self._drop(result, cand, "quote_too_short")
                continue
            out.append(cand)
        return out

    def _passages(self, chunk: Chunk, result: ExtractionResult) -> list[Candidate]:
        """The chunk's candidates when code proposes them: its passages densest in claims, not yet written."""
        q = self.settings.quality
        promo_turns = _promotional_turns(chunk)
        out: list[Candidate] = []
        for order, p in enumerate(key_passages(chunk.sentences, q.passages_per_chunk)):
            first, last = p.first, min(p.last, p.first + q.max_quote_sentences - 1)
            picked = tuple(chunk.sentences[first - 1 : last])
            cand = Candidate(
                chunk=chunk.index,
                sentences=picked,
                headline=" ".join(chunk.sentences[p.key - 1].text.split())[:200],
                weight=3,
                order=order,
                promotional=any(s.turn in promo_turns for s in picked),
            )
            if self._too_short(picked):
                self._drop(result, cand, "quote_too_short")
                continue
            out.append(cand)
        return out

    async def _weigh(
        self,
        pool: list[Candidate],
        ctx: _EpisodeContext,
        result: ExtractionResult,
        step: Callable[[int], Awaitable[None]],
    ) -> list[Candidate]:
        """Code-proposed candidates weighed by the model and ranked again on it. With a rate stage (prompt v6),
        each is rated: the probability that the model answers yes to "is this passage one of the episode's top
        takeaways?" (on the dev episodes this put 13 of the 28 labelled points among each episode's top 8;
        code's density score alone 8). Without one (v5), each is written up with an importance 1-5 (which the
        1.5B model answered 4 for nearly every passage). A candidate the model could not weigh is dropped as
        invalid output."""

        async def weigh(c: Candidate) -> float | WriteAnswer | None:
            try:
                if self.rates:
                    return await self._rating(c, ctx, result)
                return await self._write(c, ctx.passage(c, self.settings), ctx, result)
            finally:
                await step(1)

        answers = await asyncio.gather(*(weigh(c) for c in pool))
        weighed: list[Candidate] = []
        for c, answer in zip(pool, answers, strict=True):
            if answer is None:
                self._drop(result, c, "invalid_output")
                continue
            if isinstance(answer, WriteAnswer):
                c.text, c.kind, c.topics = " ".join(answer.t.split()), answer.k, tuple(answer.tp)
                c.weight = max(1, min(5, answer.w))
                c.headline = (tidy_text(answer.t, 1) or c.text)[:200]
            else:
                c.rating = answer
                main = c.main_sentence()
                chunk = ctx.chunks_by_index[c.chunk]
                c.turn_words = turn_words(chunk.sentences, main.number - 1, opened_before=chunk.index > 0)
                c.guest = guest_value(main.speaker, ctx.people)
            c.duplicates = []
            weighed.append(c)
        return self._rank(weighed, result)

    async def _rating(self, c: Candidate, ctx: _EpisodeContext, result: ExtractionResult) -> float | None:
        """The rate call on one passage: the model's probability of yes; None when the endpoint refused it."""
        assert self.prompts.rate is not None
        messages = self.prompts.rate.render(show=ctx.show, title=ctx.title, passage=" ".join(c.quote.split()))
        try:
            p, usage = await self.llm.yes_probability(messages, stage="rate")
        except PermanentError as exc:
            log.info("rate failed", extra={"reason": exc.reason, "error": str(exc)[:200]})
            return None
        result.add_usage("rate", usage)
        return p

    # Stage 3 -----------------------------------------------------------------------------------------------
    async def _write_and_verify(
        self,
        batch: list[Candidate],
        ctx: _EpisodeContext,
        episode_id: uuid.UUID,
        result: ExtractionResult,
        step: Callable[[int], Awaitable[None]],
        *,
        taken: Sequence[Candidate] = (),
    ) -> list[tuple[Candidate, Insight | None]]:
        """Write, check and verify a batch of candidates (best first); the insight of each, or None. `taken`:
        the candidates already kept. A quote moved after the write can land on a kept insight's sentences (two
        passages a sentence apart, each written about the sentence they share): the lower-ranked is then a
        duplicate, and its place goes to the next candidate."""
        passages = [ctx.passage(c, self.settings) for c in batch]

        async def write(c: Candidate, passage: _Passage) -> WriteAnswer | None:
            try:
                if c.text is None:
                    return await self._write(c, passage, ctx, result)
                picked = WriteAnswer(t=c.text, k=c.kind, tp=list(c.topics))
                if not (
                    self._needs_rewrite(picked)
                    or self._misattributed(picked.t, c, passage, ctx)
                    or copied(picked.t, c.quote)
                ):
                    return picked
                # Written with the pick, but a topic instead of a claim, credited to someone who did not say
                # it, or the quote copied out: one write call of its own.
                result.rewrites += 1
                return await self._write(c, passage, ctx, result, retry=False) or picked
            finally:
                await step(1)

        written = await asyncio.gather(*(write(c, p) for c, p in zip(batch, passages, strict=True)))
        if self.drafts:
            # The writer read the passage with its context and sometimes writes about a context sentence: the
            # quote moves to the sentences the text is drawn from, and the verifier reads those.
            for i, (c, w) in enumerate(zip(batch, written, strict=True)):
                if w is not None and self._reanchor(c, w.t, ctx):
                    passages[i] = ctx.passage(c, self.settings)
        checks: list[tuple[Reason | None, str]] = []
        for c, p, w in zip(batch, passages, written, strict=True):
            problem, text = self._gate(c, p, w, ctx)
            if problem is None and any(same_passage(c, k) for k in taken):
                problem = "duplicate"  # its quote moved onto a kept insight's sentences: nothing to verify
            checks.append((problem, text))

        async def verify(c: Candidate, p: _Passage, text: str) -> VerifyAnswer | None:
            try:
                return await self._verify(text, p, ctx, result)
            finally:
                await step(1)

        verdicts = await asyncio.gather(
            *(
                verify(c, p, text) if problem is None and self.settings.quality.verify else _none()
                for c, p, (problem, text) in zip(batch, passages, checks, strict=True)
            )
        )
        out: list[tuple[Candidate, Insight | None]] = []
        for c, w, (problem, text), verdict in zip(batch, written, checks, verdicts, strict=True):
            reason_text: str | None = None
            verdict_label: str | None = None
            if problem is None and verdict is not None:
                verdict_label = verdict.v if verdict.v in ("supported", "partly", "unsupported") else "unsupported"
                reason_text = verdict.r
                result.verdicts[verdict_label] += 1
                self.metrics.verdicts.labels(verdict_label).inc()
                if verdict_label == "partly":
                    problem = "verdict_partly"
                elif verdict_label == "unsupported":
                    problem = "verdict_unsupported"
            elif problem is not None and problem not in ("invalid_output", "truncated", "duplicate"):
                facts = problem in ("unsupported_number", "unsupported_name")
                result.verdicts["facts" if facts else "gates"] += 1
                if facts:
                    self.metrics.verdicts.labels("facts").inc()
            insight = None
            outcome: str = "kept"
            dropped: Reason | None = None
            if problem is None:
                self._on_the_point(c)
                insight = self._insight(c, text, w, episode_id, ctx)
            elif problem != "duplicate" and self.settings.quality.text_fallback == "quote" and self._quote_can_stand(c):
                self._on_the_point(c)
                # The model's text was refused, so its labels are suspect too: a claim, with the topics the
                # quote itself supports.
                quoted = content_words(c.quote)
                tags = [t for t in (w.tp if w is not None else []) if content_words(t) & quoted]
                insight = self._insight(c, c.quote, WriteAnswer(t=c.quote, k="claim", tp=tags), episode_id, ctx)
                result.text_from_quote += 1
                outcome = "kept_quote"
            else:
                dropped = problem
                outcome = problem
            if insight is not None and not self._grounded(c, ctx):
                insight = None
                dropped = "ungrounded"
                outcome = "ungrounded"
            if insight is not None and any(same_passage(c, k) for k in taken):
                insight = None
                dropped = "duplicate"
                outcome = "duplicate"
            if insight is not None:
                taken = [*taken, c]
            # Why, in words: the verifier's reason when it judged the text, else the gate's code.
            why = reason_text if problem in (None, "verdict_partly", "verdict_unsupported") else problem
            self._decide(result, c, outcome, dropped=dropped, text=text, verdict=verdict_label, reason=why)
            out.append((c, insight))
        return out

    def _reanchor(self, c: Candidate, text: str, ctx: _EpisodeContext) -> bool:
        """Move a code-proposed candidate's quote to the sentences of the passage the writer was shown that best
        support its text (`anchor_quote` within the context window); whether it moved. A range that shares no
        more of the text's words than the quote, or that would be too short or promotional, is not taken."""
        q = self.settings.quality
        chunk = ctx.chunks_by_index[c.chunk]
        first, last = c.sentences[0].number, c.sentences[-1].number
        lo, hi = max(1, first - q.context_before), min(len(chunk.sentences), last + q.context_after)
        window = chunk.sentences[lo - 1 : hi]
        names = {p.name for p in ctx.people} | {s.speaker for s in window if s.speaker}
        reach = max(q.context_before, q.context_after)
        a, b = anchor_quote(window, text, first - lo + 1, last - lo + 1, q.max_quote_sentences, reach, ignore=names)
        moved = tuple(window[a - 1 : b])
        # Only towards the text: a range that shares no more of its words is no better evidence (a text that
        # shares none would otherwise move to the shortest sentence, the charge per word deciding).
        wanted = text_words(text, names)
        if moved == c.sentences or shared_words(moved, wanted) <= shared_words(c.sentences, wanted):
            return False
        promo_turns = _promotional_turns(chunk)
        if self._too_short(moved) or any(s.turn in promo_turns for s in moved):
            return False
        c.sentences = moved
        return True

    def _needs_rewrite(self, answer: WriteAnswer) -> bool:
        """A text that names a topic instead of stating a claim, or starts with a pronoun: worth asking again."""
        text = tidy_text(answer.t)
        problem = None if text is None else specificity_problem(text, min_words=self.settings.quality.min_text_words)
        return problem in ("vague", "no_referent")

    async def _write(
        self, c: Candidate, passage: _Passage, ctx: _EpisodeContext, result: ExtractionResult, *, retry: bool = True
    ) -> WriteAnswer | None:
        """The writer's answer. A text that names a topic instead of stating a claim ("X discusses Y"), or that
        starts with a pronoun, is asked for once more with the version's retry prompt; the second answer
        stands, and the gates judge it. A text that copies its quote (the speaker's name, then the quote's own
        sentence), or that the length bound cut off, is written again with DRY where the server has it
        (`StructuredLLM.restates`), which penalises repeating the passage; which of the two stands is
        `_restatement_wins`."""
        messages = self.prompts.write.render(
            show=ctx.show,
            title=ctx.title,
            people=ctx.people_for(passage),
            labelled=bool(passage.speakers),
            passage=passage.marked,
            headline=c.headline,
            said_by=said_by(c),
        )
        answer = await self._write_call(messages, result)
        follow = self.prompts.write_retry
        if answer is not None and follow is not None and retry and self._needs_rewrite(answer):
            result.rewrites += 1
            follow_up = [
                *messages,
                {"role": "assistant", "content": answer.model_dump_json()},
                {"role": "user", "content": follow},
            ]
            answer = await self._write_call(follow_up, result) or answer
        if (
            answer is not None
            and retry
            and self.llm.restates
            and (copied(answer.t, c.quote) or not tidy_text(answer.t))
        ):
            result.rewrites += 1
            restated = await self._write_call(messages, result, restate=True)
            if restated is not None and self._restatement_wins(restated, answer, c, passage, ctx):
                answer = restated
        return answer

    def _restatement_wins(
        self, restated: WriteAnswer, first: WriteAnswer, c: Candidate, passage: _Passage, ctx: _EpisodeContext
    ) -> bool:
        """Whether the text written again with DRY replaces the first, which copied its quote or was cut off at
        the length bound (a long copy, mostly): when it passes the code's checks and restates, or when it
        passes them and the first does not. A restatement that gets a fact wrong leaves a first text that passes
        (a held-out run's restatement put Docker Hub's 2,500 repositories "on GitHub", and the facts check
        refused a point its copy had kept); where neither passes, a restatement still replaces a copy, and the
        gates judge it."""
        passes = self._gate(c, passage, restated, ctx)[0] is None
        first_passes = self._gate(c, passage, first, ctx)[0] is None
        if passes != first_passes:
            return passes
        return not copied(restated.t, c.quote)

    async def _write_call(
        self, messages: list[dict[str, str]], result: ExtractionResult, *, restate: bool = False
    ) -> WriteAnswer | None:
        try:
            answer = await self.llm.complete_json(
                messages,
                write_schema(self.settings.quality.max_text_chars, importance=self.drafts and not self.rates),
                WriteAnswer,
                schema_name="insight",
                max_tokens=WRITE_MAX_TOKENS,
                stage="write",
                restate=restate,
            )
        except PermanentError as exc:
            log.info("write failed", extra={"reason": exc.reason, "error": str(exc)[:200]})
            return None
        result.add_usage("write", answer.usage)
        return answer.value

    async def _verify(
        self, text: str, passage: _Passage, ctx: _EpisodeContext, result: ExtractionResult
    ) -> VerifyAnswer | None:
        messages = self.prompts.verify.render(people=ctx.people_for(passage), passage=passage.verify, summary=text)
        try:
            answer = await self.llm.complete_json(
                messages,
                verify_schema(),
                VerifyAnswer,
                schema_name="verdict",
                max_tokens=VERIFY_MAX_TOKENS,
                stage="verify",
            )
        except PermanentError as exc:
            log.info("verify failed", extra={"reason": exc.reason, "error": str(exc)[:200]})
            return VerifyAnswer(r="the verifier gave no valid answer", v="unsupported")
        result.add_usage("verify", answer.usage)
        return answer.value

    def _misattributed(self, text: str, c: Candidate, passage: _Passage, ctx: _EpisodeContext) -> bool:
        """Whether the text credits its claim to a known person who did not say it (see `misattributed`)."""
        chunk = ctx.chunks_by_index[c.chunk]
        known = [p.name for p in ctx.people] + [s.speaker for s in chunk.sentences if s.speaker]
        return misattributed(
            text, people=known, quote_speakers=[s.speaker for s in c.sentences if s.speaker], passage=passage.plain
        )

    def _credited(self, text: str, passage: _Passage, ctx: _EpisodeContext) -> str | None:
        """The text with a credit nothing founds given to the show, or None when it cannot be. Only where the
        passage has no named speaker and the feed names more than one person (one is the quote's speaker,
        `speaker_of`): a name the passage never mentions is then the model's guess, mostly the host's, for what
        the guest said ("Daniel Okafor says ..." becomes "The Margin Call hears that ...")."""
        if len(ctx.people) < 2 or any(not anonymous_speaker(s) for s in passage.speakers):
            return text
        person = unfounded_lead(text, people=[p.name for p in ctx.people], passage=passage.plain)
        if person is None:
            return text
        credited = credit_the_show(text, person=person, show=ctx.show)
        if credited is not None:
            log.info("credit given to the show", extra={"person": person})
        return credited

    def _gate(
        self, c: Candidate, passage: _Passage, written: WriteAnswer | None, ctx: _EpisodeContext
    ) -> tuple[Reason | None, str]:
        """The code gates on a written text: (problem or None, the tidied text)."""
        q = self.settings.quality
        if written is None:
            return "invalid_output", ""
        text = tidy_text(written.t)
        if text is None:
            return "truncated", written.t
        credited = self._credited(text, passage, ctx)
        if credited is None:
            return "misattributed", text
        text = credited
        problem = specificity_problem(text, min_words=q.min_text_words, context=passage.context)
        if problem is not None:
            return problem, text
        if promotional(text):
            return "promotional", text
        if self._misattributed(text, c, passage, ctx):
            return "misattributed", text
        facts = check_facts(text, passage.context)
        if not facts.ok:
            log.info("written text states what the passage does not", extra={"why": facts.describe()})
            return facts.reason or "unsupported_text", text
        return None, text

    def _on_the_point(self, c: Candidate) -> None:
        """A kept quote without the backchannel it opens or ends with and the questions it ends with
        (`on_the_point`), when what is left is long enough to carry a claim; its times and speaker follow. The
        writer and the verifier read the passage whole: this only decides what the brief quotes."""
        trimmed = on_the_point(c.sentences)
        if trimmed != tuple(c.sentences) and not self._too_short(trimmed):
            c.sentences = trimmed

    def _quote_can_stand(self, c: Candidate) -> bool:
        q = self.settings.quality
        quote = c.quote
        return (
            not c.promotional
            and len(quote.split()) >= q.min_fallback_words
            and specificity_problem(quote, min_words=q.min_fallback_words) is None
        )

    def _grounded(self, c: Candidate, ctx: _EpisodeContext) -> bool:
        """The quote is the transcript's own words: re-found in its chunk (a check, since it is built from the
        chunk's sentences; a bug in sentence splitting would show here)."""
        chunk = ctx.chunks_by_index[c.chunk]
        match = ground(c.quote, ctx.tokens(chunk))
        return match is not None and match.score >= self.settings.quality.grounding_threshold

    def _insight(
        self, c: Candidate, text: str, written: WriteAnswer | None, episode_id: uuid.UUID, ctx: _EpisodeContext
    ) -> Insight:
        kind = written.k if written is not None and written.k in KINDS else "claim"
        topics: list[str] = []
        for t in written.tp if written is not None else []:
            tag = " ".join(t.split()).lower()[:40]
            if tag and tag not in topics:
                topics.append(tag)
        quote = c.quote[:2000]
        return Insight(
            insight_id=insight_id(episode_id, quote, c.start_s),
            text=text[:1000],
            quote=quote,
            start_s=round(c.start_s, 2),
            end_s=round(max(c.end_s, c.start_s), 2),
            speaker=speaker_of(c, ctx.people),
            topics=tuple(topics[:5]),
            importance=round(min(1.0, max(0.0, c.score)), 3),
            kind=InsightKind(kind),
            grounding_score=1.0,
            prompt_version=self.prompts.label,
            model=self.llm.model,
        )

    def _rank(self, pool: list[Candidate], result: ExtractionResult) -> list[Candidate]:
        """`selection.rank` with this extractor's settings; the duplicates it merged are recorded as dropped."""
        q = self.settings.quality
        ranked = rank(pool, merge_similarity=q.merge_similarity, novelty=q.novelty, speaker_weight=q.speaker_weight)
        for c in ranked:
            for d in c.duplicates:
                self._drop(result, d, "duplicate")
        return ranked

    def _too_short(self, sentences: Sequence[Sentence]) -> bool:
        """A quote of fewer than `min_quote_words` words cannot carry a claim."""
        return sum(len(s.text.split()) for s in sentences) < self.settings.quality.min_quote_words

    def _drop(self, result: ExtractionResult, c: Candidate, reason: Reason) -> None:
        self._decide(result, c, reason, dropped=reason)

    def _decide(
        self,
        result: ExtractionResult,
        c: Candidate,
        outcome: str,
        *,
        dropped: Reason | None,
        text: str = "",
        verdict: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record what happened to a candidate, and count a drop by its reason (a vocabulary code)."""
        if dropped is not None:
            result.dropped[dropped] += 1
            self.metrics.insights_dropped.labels(dropped).inc()
        result.decisions.append(
            Decision(
                chunk=c.chunk,
                start_s=round(c.start_s, 2),
                headline=c.headline,
                quote=c.quote,
                score=round(c.score, 3),
                outcome=outcome,
                text=text,
                verdict=verdict,
                reason=reason,
                weight=c.weight,
                kind=c.kind,
                rating=None if c.rating is None else round(c.rating, 3),
            )
        )


async def _none() -> None:
    return None


def _promotional_turns(chunk: Chunk) -> set[int]:
    """Indexes of the chunk's segments that belong to a sponsor read or housekeeping: a segment with an ad
    phrase, and (when speakers are unknown, as with Whisper) its neighbours within 45 seconds, since an ad read
    then spans several segments."""
    segs = chunk.segments
    flagged = {i for i, s in enumerate(segs) if promotional(s.text)}
    out = set(flagged)
    for i in flagged:
        if segs[i].speaker is not None:
            continue
        for j in range(len(segs)):
            if segs[j].speaker is None and abs(segs[j].start_s - segs[i].start_s) <= 45.0:
                out.add(j)
    return out


@dataclass(frozen=True)
class _Passage:
    marked: str  # for the writer: speaker lines, the quote's sentences marked with >>
    plain: str  # the same sentences, unmarked
    verify: str  # for the verifier: the quote and a small window around it, unmarked
    context: str  # what the facts check accepts numbers and names from
    speakers: tuple[str, ...]


@dataclass
class _EpisodeContext:
    show: str
    title: str
    people: tuple[Person, ...]
    chunks: list[Chunk]
    _tokens: dict[int, Any] = field(default_factory=dict)

    @property
    def chunks_by_index(self) -> dict[int, Chunk]:
        return {c.index: c for c in self.chunks}

    def tokens(self, chunk: Chunk) -> Any:
        if chunk.index not in self._tokens:
            self._tokens[chunk.index] = tokens_of(chunk.segments)
        return self._tokens[chunk.index]

    def people_for(self, passage: _Passage) -> str:
        return people_line(self.people, passage.speakers)

    def passage(self, c: Candidate, settings: ExtractionSettings) -> _Passage:
        q = settings.quality
        chunk = self.chunks_by_index[c.chunk]
        sentences = chunk.sentences
        first = c.sentences[0].number - 1
        last = c.sentences[-1].number - 1
        lo, hi = max(0, first - q.context_before), min(len(sentences), last + 1 + q.context_after)
        vlo, vhi = max(0, first - q.verify_context), min(len(sentences), last + 1 + q.verify_context)
        marked: list[str] = []
        plain: list[str] = []
        verify: list[str] = []
        speaker: str | None = None
        vspeaker: str | None = None
        speakers: list[str] = []
        for i in range(lo, hi):
            s = sentences[i]
            if s.speaker and s.speaker != speaker:
                marked.append(f"{s.speaker}:")
                plain.append(f"{s.speaker}:")
                if s.speaker not in speakers:
                    speakers.append(s.speaker)
            speaker = s.speaker
            marked.append((">> " if first <= i <= last else "") + s.text)
            plain.append(s.text)
            if vlo <= i < vhi:
                if s.speaker and s.speaker != vspeaker:
                    verify.append(f"{s.speaker}:")
                vspeaker = s.speaker
                verify.append(s.text)
        people = " ".join(f"{p.name} {p.role or ''}" for p in self.people)
        context = "\n".join([self.show, self.title, people, *plain])
        return _Passage("\n".join(marked), "\n".join(plain), "\n".join(verify), context, tuple(speakers))
