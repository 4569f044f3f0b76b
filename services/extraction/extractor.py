"""Transcript -> insights: chunk, ask the model for structured candidates, keep only what passes the gates.

A chunk whose answer stays invalid after one repair (or that the endpoint rejects as a bad request) counts as
failed and the episode completes with the others. An endpoint that is down raises RetryableError, so the
whole episode is retried later by the bus."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from podbrief.errors import PermanentError
from podbrief.events import Chapter, Insight, InsightKind, Transcript, insight_id
from podbrief.reasons import Reason
from podbrief_extraction.adapters.llm import Structured, Usage
from podbrief_extraction.chunking import Chunk, chunk_transcript, token_budget
from podbrief_extraction.grounding import (
    Candidate,
    content_words,
    ground,
    merge_and_cap,
    specificity_problem,
    tokens_of,
)
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.prompts import PromptTemplate
from podbrief_extraction.prompts import load as load_prompt
from podbrief_extraction.settings import ExtractionSettings
from pydantic import BaseModel, ConfigDict, Field, field_validator

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
KINDS = tuple(k.value for k in InsightKind)
# Text problems the quote itself can fix (a vague or unsupported paraphrase); not a too-short quote.
FALLBACK_REASONS: frozenset[Reason] = frozenset(
    {"too_short", "vague", "no_referent", "unsupported_text", "unsupported_number"}
)


class RawInsight(BaseModel):
    """One candidate as the model writes it; lenient, because the gates decide what survives."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(max_length=2000)
    quote: str = Field(max_length=2000)
    topics: list[str] = Field(default_factory=list)
    kind: str = "claim"
    importance: float = 3

    @field_validator("topics", mode="before")
    @classmethod
    def _topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value


class ChunkAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    insights: list[RawInsight] = Field(max_length=50)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def quote_choices(chunk: Chunk, max_chars: int = 300) -> list[str]:
    """The chunk's sentences (split further at commas when long): the only quotes the grammar allows."""
    out: list[str] = []
    for seg in chunk.segments:
        for sentence in _SENTENCE_END.split(seg.text.strip()):
            sentence = sentence.strip()
            while len(sentence) > max_chars:
                cut = sentence.rfind(", ", 0, max_chars)
                cut = cut + 1 if cut > max_chars // 3 else sentence.rfind(" ", 0, max_chars)
                if cut <= 0:
                    cut = max_chars
                out.append(sentence[:cut].strip())
                sentence = sentence[cut:].strip()
            if len(sentence.split()) >= 3 and sentence not in out:
                out.append(sentence)
    return out


def answer_schema(max_items: int, quotes: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema the server enforces. Every string and array is bounded, so a small model cannot run
    on inside one value. With `quotes`, the quote must be one of the transcript's own sentences: the grammar
    then makes a fabricated quote impossible, whatever the model."""
    quote: dict[str, Any] = {"type": "string", "minLength": 10, "maxLength": 300}
    if quotes:
        quote = {"type": "string", "enum": quotes}
    return {
        "type": "object",
        "properties": {
            "insights": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_items,
                "items": {
                    "type": "object",
                    "properties": {
                        # The quote first: copying is what a small model does best, and the text is then
                        # written with the quote in view.
                        "quote": quote,
                        "text": {"type": "string", "minLength": 10, "maxLength": 300},
                        "topics": {
                            "type": "array",
                            "maxItems": 3,
                            "items": {"type": "string", "minLength": 2, "maxLength": 30},
                        },
                        "kind": {"type": "string", "enum": list(KINDS)},
                        "importance": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
                    },
                    "required": ["quote", "text", "topics", "kind", "importance"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["insights"],
        "additionalProperties": False,
    }


class StructuredLLM(Protocol):
    model: str

    async def complete_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        model: type[T],
        *,
        schema_name: str = ...,
        max_tokens: int | None = ...,
    ) -> Structured[T]: ...


@dataclass
class ExtractionResult:
    insights: list[Insight]
    chunks_total: int = 0
    chunks_failed: int = 0
    dropped: Counter[Reason] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    prompt_version: str = ""
    status: Literal["done", "skipped"] = "done"
    text_from_quote: int = 0
    detail: str | None = None


Progress = Callable[[int, int | None], Awaitable[None] | None]


class Extractor:
    def __init__(
        self,
        llm: StructuredLLM,
        settings: ExtractionSettings,
        metrics: ExtractionMetrics | None = None,
        prompt: PromptTemplate | None = None,
    ) -> None:
        self.llm = llm
        self.settings = settings
        self.metrics = metrics or ExtractionMetrics.create()
        self.prompt = prompt or load_prompt(settings.prompt_version)
        q = settings.quality
        self.schema = answer_schema(q.max_insights_per_chunk)
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
        progress: Progress | None = None,
    ) -> ExtractionResult:
        result = ExtractionResult([], model=self.llm.model, prompt_version=self.prompt.label)
        if not self.language_supported(transcript.language):
            result.status, result.detail = "skipped", f"unsupported language {transcript.language}"
            return result
        chunks = self.chunks(transcript, chapters)
        result.chunks_total = len(chunks)
        done = 0

        async def one(chunk: Chunk) -> list[Candidate] | None:
            nonlocal done
            try:
                return await self._chunk(chunk, show=show, title=title, result=result)
            finally:
                done += 1
                if progress is not None:
                    maybe = progress(done, len(chunks))
                    if maybe is not None:
                        await maybe

        # The client's semaphore bounds requests in flight; gathering lets vLLM batch a whole episode.
        answers = await asyncio.gather(*(one(c) for c in chunks))
        candidates = [c for a in answers if a is not None for c in a]
        result.chunks_failed = sum(1 for a in answers if a is None)
        q = self.settings.quality
        kept, merged, capped = merge_and_cap(candidates, threshold=q.merge_similarity, cap=q.max_insights_per_episode)
        if merged:
            result.dropped["duplicate"] += merged
            self.metrics.insights_dropped.labels("duplicate").inc(merged)
        if capped:
            result.dropped["episode_cap"] += capped
            self.metrics.insights_dropped.labels("episode_cap").inc(capped)
        self.metrics.insights_kept.inc(len(kept))
        result.insights = [self._insight(c, episode_id) for c in kept]
        return result

    async def _chunk(self, chunk: Chunk, *, show: str, title: str, result: ExtractionResult) -> list[Candidate] | None:
        messages = self.prompt.render(
            transcript=chunk.prompt_text,
            show=show,
            title=title,
            max_insights=self.settings.quality.max_insights_per_chunk,
        )
        try:
            schema = self.schema
            if self.settings.quality.quote_choices:
                schema = answer_schema(self.settings.quality.max_insights_per_chunk, quote_choices(chunk))
            answer = await self.llm.complete_json(messages, schema, ChunkAnswer, schema_name="insights")
        except PermanentError as exc:
            # Invalid output after repair, or a request the endpoint refuses: this chunk only.
            usage = getattr(exc, "usage", None)
            if isinstance(usage, Usage):
                result.usage.add(usage)
            self.metrics.chunks.labels("failed").inc()
            log.warning("chunk failed", extra={"chunk": chunk.index, "reason": exc.reason, "error": str(exc)[:300]})
            return None
        result.usage.add(answer.usage)
        self.metrics.chunks.labels("ok").inc()
        return self._gate(chunk, answer.value, result)

    def _drop(self, result: ExtractionResult, reason: Reason) -> None:
        result.dropped[reason] += 1
        self.metrics.insights_dropped.labels(reason).inc()

    def _gate(self, chunk: Chunk, answer: ChunkAnswer, result: ExtractionResult) -> list[Candidate]:
        q = self.settings.quality
        tokens = tokens_of(chunk.segments)
        out: list[Candidate] = []
        for raw in answer.insights[: q.max_insights_per_chunk]:
            text = " ".join(raw.text.split())
            match = ground(raw.quote, tokens)
            if match is None or match.score < q.grounding_threshold:
                self._drop(result, "ungrounded")
                continue
            if len(match.quote.split()) < q.min_quote_words:
                self._drop(result, "quote_too_short")
                continue
            problem = specificity_problem(text, min_words=q.min_text_words, quote=match.quote)
            importance_factor = 1.0
            if problem is not None and q.text_fallback == "quote" and problem in FALLBACK_REASONS:
                # A small model picks good sentences but writes poor paraphrases: the transcript's own
                # sentence is a truthful text, if it is itself specific enough to stand alone.
                own = " ".join(match.quote.split())
                if len(own.split()) >= q.min_fallback_words and specificity_problem(own, min_words=4) is None:
                    text, problem, importance_factor = own, None, 0.8
                    result.text_from_quote += 1
            if problem is not None:
                self._drop(result, problem)
                continue
            kind = raw.kind if raw.kind in KINDS else "claim"
            raw_topics = raw.topics
            if importance_factor < 1.0:
                # The model's paraphrase was unusable, so its labels are suspect too: keep the tags the quote
                # supports, and call it a claim.
                kind = "claim"
                quoted = content_words(match.quote)
                raw_topics = [t for t in raw.topics if content_words(t) & quoted]
            importance = min(1.0, max(0.0, float(raw.importance) / 5.0)) * importance_factor
            topics = []
            for t in raw_topics:
                tag = " ".join(t.split()).lower()[:40]
                if tag and tag not in topics:
                    topics.append(tag)
            out.append(
                Candidate(
                    text=text[:1000],
                    quote=match.quote[:2000],
                    start_s=match.start_s,
                    end_s=match.end_s,
                    speaker=match.speaker,
                    topics=topics[:5],
                    importance=importance,
                    kind=kind,
                    grounding=match.score,
                    chunk=chunk.index,
                )
            )
        return out

    def _insight(self, c: Candidate, episode_id: uuid.UUID) -> Insight:
        return Insight(
            insight_id=insight_id(episode_id, c.quote, c.start_s),
            text=c.text,
            quote=c.quote,
            start_s=round(c.start_s, 2),
            end_s=round(max(c.end_s, c.start_s), 2),
            speaker=c.speaker,
            topics=tuple(c.topics),
            importance=round(c.importance, 3),
            kind=InsightKind(c.kind),
            grounding_score=min(1.0, c.grounding),
            prompt_version=self.prompt.label,
            model=self.llm.model,
        )
