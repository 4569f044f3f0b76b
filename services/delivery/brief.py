"""The brief as ONE model, rendering the email (HTML and text), the web page and the JSON."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import numpy as np
from podbrief.text import single_line
from podbrief_delivery.models import CandidateInsight
from podbrief_delivery.ranking import Pick
from pydantic import AfterValidator, BaseModel, ConfigDict

STRONG_PHRASE_MATCH = 0.3
# Text shown on one line in the email (HTML and plain), the web page and the Subject: whitespace folded (no
# forged lines), control, bidi-control and zero-width characters removed (#21), whatever upstream let through.
Line = Annotated[str, AfterValidator(single_line)]


class RelatedItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    insight_id: uuid.UUID
    text: Line
    quote: Line | None = None
    show: Line
    episode_title: Line
    timestamp_s: float | None = None
    timestamp_label: str | None = None
    timestamp_url: str | None = None


class BriefItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    insight_id: uuid.UUID
    rank: int
    text: Line
    quote: Line
    speaker: Line | None = None
    show: Line
    episode_title: Line
    episode_id: uuid.UUID
    episode_url: str | None = None
    timestamp_s: float
    timestamp_label: str
    timestamp_url: str | None = None
    topics: list[Line] = []
    importance: float
    cluster_size: int
    cluster_shows: int
    score: float
    explanation: str
    related: list[RelatedItem] = []
    # The correlation id the insight's episode carried through the pipeline (None for insights stored before
    # delivery kept it).
    correlation_id: uuid.UUID | None = None


class Brief(BaseModel):
    model_config = ConfigDict(frozen=True)

    brief_id: uuid.UUID
    subscriber_id: uuid.UUID
    brief_date: date
    generated_at: datetime
    # full: the usual picks; shorter: a quiet day with fewer picks; note: nothing new worth sending.
    kind: Literal["full", "shorter", "note"]
    note: str | None = None
    items: list[BriefItem] = []

    @property
    def insight_ids(self) -> list[uuid.UUID]:
        return [i.insight_id for i in self.items]

    @property
    def correlation_id(self) -> uuid.UUID:
        """What ties the brief to the pipeline's logs and events: its top pick's episode correlation id, carried
        from the feed; the brief's own id when it has no pick that carries one (a note, or older insights)."""
        return next((i.correlation_id for i in self.items if i.correlation_id is not None), self.brief_id)


def safe_http_url(url: str | None) -> str | None:
    """Only absolute http(s) URLs without credentials or whitespace leave as links."""
    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return url


def mmss(seconds: float) -> str:
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def timestamp_url(enclosure_url: str | None, link: str | None, seconds: float | None) -> str | None:
    """The audio file with a media fragment (#t=) seeks in browsers' players; an episode
    page cannot seek, so it is the fallback only."""
    base = safe_http_url(enclosure_url) or safe_http_url(link)
    if base is None:
        return None
    base = base.split("#", 1)[0]
    return f"{base}#t={max(0, int(seconds or 0))}"


def related_for(
    row: CandidateInsight, pool: dict[uuid.UUID, CandidateInsight], *, minimum: int, maximum: int
) -> list[RelatedItem]:
    """Related insights from other episodes, other shows first: the clustering event's list,
    then cluster-mates stored here when the event brought fewer than `minimum`."""
    out: list[RelatedItem] = []
    seen = {row.insight_id}
    candidates: list[tuple[int, float, RelatedItem]] = []
    for r in row.related or []:
        try:
            rid = uuid.UUID(str(r["insight_id"]))
            if rid in seen or str(r.get("episode_id")) == str(row.episode_id):
                continue
            item = RelatedItem(
                insight_id=rid,
                text=str(r["text"]),
                quote=r.get("quote"),
                show=str(r["show"]),
                episode_title=str(r["episode_title"]),
                timestamp_s=r.get("start_s"),
                timestamp_label=mmss(r["start_s"]) if r.get("start_s") is not None else None,
                timestamp_url=timestamp_url(None, r.get("link"), r.get("start_s"))
                if r.get("start_s") is not None
                else safe_http_url(r.get("link")),
            )
        except (KeyError, ValueError, TypeError):
            continue
        seen.add(rid)
        candidates.append((0 if item.show.casefold() != row.show.casefold() else 1, -float(r.get("score", 0)), item))
    if len(candidates) < minimum:
        for other in pool.values():
            if other.cluster_id != row.cluster_id or other.insight_id in seen or other.episode_id == row.episode_id:
                continue
            seen.add(other.insight_id)
            candidates.append(
                (
                    0 if other.show.casefold() != row.show.casefold() else 1,
                    0.0,
                    RelatedItem(
                        insight_id=other.insight_id,
                        text=other.text,
                        quote=other.quote,
                        show=other.show,
                        episode_title=other.episode_title,
                        timestamp_s=other.start_s,
                        timestamp_label=mmss(other.start_s),
                        timestamp_url=timestamp_url(other.enclosure_url, other.episode_link, other.start_s),
                    ),
                )
            )
    candidates.sort(key=lambda t: (t[0], t[1]))
    out = [c[2] for c in candidates[:maximum]]
    return out


def explain(
    pick: Pick, row: CandidateInsight, phrases: list[dict[str, Any]], vector: np.ndarray, min_relevance: float
) -> str:
    parts: list[str] = []
    if pick.relevance >= min_relevance and phrases:
        best, best_sim = None, -2.0
        for ph in phrases:
            v = np.asarray(ph.get("vector") or [], dtype=np.float32)
            if v.shape != vector.shape:
                continue
            s = float(v @ vector)
            if s > best_sim:
                best, best_sim = str(ph.get("text", "")), s
        # A weak best phrase would explain nothing; MiniLM puts unrelated sentences around 0.1-0.25.
        if best and best_sim >= STRONG_PHRASE_MATCH:
            parts.append(f"matches your interest in “{best}”")
        else:
            parts.append("close to your interests")
    if pick.followed:
        parts.append(f"from {row.show}, a show you follow")
    if row.cluster_shows >= 2:
        parts.append(f"said on {row.cluster_shows} shows")
    if row.importance >= 0.8:
        parts.append("rated highly important")
    if not parts:
        parts.append("one of today's most important insights")
    text = "; ".join(parts)
    return text[0].upper() + text[1:]


def build_item(
    rank_no: int,
    pick: Pick,
    row: CandidateInsight,
    pool: dict[uuid.UUID, CandidateInsight],
    *,
    phrases: list[dict[str, Any]],
    vector: np.ndarray,
    min_relevance: float,
    related_min: int,
    related_max: int,
) -> BriefItem:
    return BriefItem(
        insight_id=row.insight_id,
        rank=rank_no,
        text=row.text,
        quote=row.quote,
        speaker=row.speaker,
        show=row.show,
        episode_title=row.episode_title,
        episode_id=row.episode_id,
        episode_url=safe_http_url(row.episode_link) or safe_http_url(row.enclosure_url),
        timestamp_s=row.start_s,
        timestamp_label=mmss(row.start_s),
        timestamp_url=timestamp_url(row.enclosure_url, row.episode_link, row.start_s),
        topics=list(row.topics or []),
        importance=row.importance,
        cluster_size=row.cluster_size,
        cluster_shows=row.cluster_shows,
        score=round(pick.score, 4),
        explanation=explain(pick, row, phrases, vector, min_relevance),
        related=related_for(row, pool, minimum=related_min, maximum=related_max),
        correlation_id=row.correlation_id,
    )
