"""Personalised ranking, vectorised over all candidates and a batch of subscribers at once.

For subscriber u and candidate insight i (all terms in [0, 1] except relevance, a cosine in [-1, 1]):

    score(u, i) = w_rel * cos(interest_u, v_i) + w_follow * [show_i in followed_u] + w_imp * importance_i
                + w_corr * corroboration_i + w_fresh * 0.5 ** (age_i / half_life)

    corroboration_i = 0.7 * min(1, ln(shows_i) / ln 5) + 0.3 * min(1, ln(size_i) / ln 10)

Already-sent insights are excluded. Candidates that qualify (relevance >= min_relevance, or from a followed
show, or any candidate when the subscriber gave no interests) go through MMR: each step takes the argmax of
lambda * score - (1 - lambda) * max cosine to the picks so far, and a pick blocks the rest of its cluster.
MMR runs over each subscriber's top-M by score (M = 10k, at least 50), so the cost per subscriber is one
matrix row, not a loop over candidates."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from podbrief_delivery.settings import RankingSettings


@dataclass
class Candidates:
    ids: list[uuid.UUID]
    vectors: np.ndarray  # (N, d) float32, L2-normalised
    importance: np.ndarray  # (N,)
    corroboration: np.ndarray  # (N,)
    freshness: np.ndarray  # (N,)
    cluster: np.ndarray  # (N,) int cluster index
    show: np.ndarray  # (N,) int show index
    show_names: list[str]  # casefolded show name per show index
    index: dict[uuid.UUID, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {cid: i for i, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls,
        *,
        ids: Sequence[uuid.UUID],
        vectors: np.ndarray,
        importance: Sequence[float] | np.ndarray,
        cluster_ids: Sequence[uuid.UUID],
        cluster_sizes: Sequence[int] | np.ndarray,
        cluster_shows: Sequence[int] | np.ndarray,
        shows: Sequence[str],
        times: Sequence[datetime],
        now: datetime,
        settings: RankingSettings,
    ) -> Candidates:
        n = len(ids)
        clusters: dict[uuid.UUID, int] = {}
        show_idx: dict[str, int] = {}
        cl = np.fromiter((clusters.setdefault(c, len(clusters)) for c in cluster_ids), dtype=np.int64, count=n)
        sh = np.fromiter((show_idx.setdefault(s.casefold(), len(show_idx)) for s in shows), dtype=np.int64, count=n)
        size = np.asarray(cluster_sizes, dtype=np.float32).reshape(n)
        nshows = np.asarray(cluster_shows, dtype=np.float32).reshape(n)
        corr = 0.7 * np.minimum(1.0, np.log(np.maximum(nshows, 1.0)) / math.log(5)) + 0.3 * np.minimum(
            1.0, np.log(np.maximum(size, 1.0)) / math.log(10)
        )
        age_h = np.fromiter(((now - t).total_seconds() / 3600.0 for t in times), dtype=np.float32, count=n)
        fresh = np.power(0.5, np.maximum(age_h, 0.0) / settings.freshness_half_life_h).astype(np.float32)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1), np.float32)
        return cls(
            ids=list(ids),
            vectors=vecs,
            importance=np.asarray(importance, dtype=np.float32).reshape(n),
            corroboration=corr.astype(np.float32),
            freshness=fresh,
            cluster=cl,
            show=sh,
            show_names=list(show_idx),
        )


@dataclass
class Profile:
    subscriber_id: uuid.UUID
    vector: np.ndarray | None  # (d,) normalised, or None when no interests were given
    followed_shows: frozenset[str] = frozenset()  # casefolded
    sent: frozenset[uuid.UUID] = frozenset()


@dataclass
class Pick:
    index: int  # into Candidates
    score: float
    relevance: float
    followed: bool


@dataclass
class Ranked:
    subscriber_id: uuid.UUID
    picks: list[Pick]
    qualifying: int  # candidates that qualified before MMR: fewer than k means a quiet day


def rank(cands: Candidates, profiles: Sequence[Profile], settings: RankingSettings, k: int) -> list[Ranked]:
    """Rank for a batch of subscribers; callers batch large populations (memory is B x N floats)."""
    b, n = len(profiles), len(cands)
    if n == 0 or b == 0:
        return [Ranked(p.subscriber_id, [], 0) for p in profiles]
    d = cands.vectors.shape[1]
    users = np.zeros((b, d), dtype=np.float32)
    has_vec = np.zeros(b, dtype=bool)
    for r, p in enumerate(profiles):
        if p.vector is not None and p.vector.shape == (d,):
            users[r] = p.vector
            has_vec[r] = True
    rel = users @ cands.vectors.T  # (B, N)

    # Followed shows: a (B, shows) mask broadcast onto candidates through their show index.
    show_pos = {name: i for i, name in enumerate(cands.show_names)}
    follow_by_show = np.zeros((b, len(cands.show_names)), dtype=bool)
    for r, p in enumerate(profiles):
        for s in p.followed_shows:
            j = show_pos.get(s)
            if j is not None:
                follow_by_show[r, j] = True
    followed = follow_by_show[:, cands.show]  # (B, N)

    static = (
        settings.importance * cands.importance
        + settings.corroboration * cands.corroboration
        + settings.freshness * cands.freshness
    )
    score = rel * np.float32(settings.relevance)
    score += followed * np.float32(settings.followed_show)
    score += static.astype(np.float32)[None, :]
    qualifies = (rel >= settings.min_relevance) | followed | ~has_vec[:, None]
    rows: list[int] = []
    cols: list[int] = []
    for r, p in enumerate(profiles):
        for iid in p.sent:
            j = cands.index.get(iid)
            if j is not None:
                rows.append(r)
                cols.append(j)
    if rows:
        qualifies[rows, cols] = False
    score = np.where(qualifies, score, -np.inf).astype(np.float32)
    qualifying = qualifies.sum(axis=1)

    m = min(n, max(50, 10 * k))
    if m < n:
        top = np.argpartition(-score, m - 1, axis=1)[:, :m]
    else:
        top = np.broadcast_to(np.arange(n), (b, n)).copy()
    top_score = np.take_along_axis(score, top, axis=1)
    order = np.argsort(-top_score, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_score = np.take_along_axis(top_score, order, axis=1)
    top_vec = cands.vectors[top]  # (B, M, d)
    top_cluster = cands.cluster[top]

    lam = settings.mmr_lambda
    alive = np.isfinite(top_score)
    max_sim = np.zeros_like(top_score)
    chosen = np.full((b, k), -1, dtype=np.int64)
    batch = np.arange(b)
    for step in range(k):
        mmr = np.where(alive, lam * top_score - (1.0 - lam) * max_sim, -np.inf)
        j = np.argmax(mmr, axis=1)
        ok = np.isfinite(mmr[batch, j])
        chosen[:, step] = np.where(ok, j, -1)
        # One pick per cluster: the picked cluster leaves the pool.
        alive &= ~(top_cluster == top_cluster[batch, j][:, None]) | ~ok[:, None]
        # Cosine of the new pick to each remaining candidate: one (B, M) row, never the full (B, M, M).
        sim = np.einsum("bd,bmd->bm", top_vec[batch, j], top_vec)
        max_sim = np.where(ok[:, None], np.maximum(max_sim, sim), max_sim)

    out: list[Ranked] = []
    for r, p in enumerate(profiles):
        picks: list[Pick] = []
        for j in chosen[r]:
            if j < 0:
                break
            ci = int(top[r, j])
            picks.append(Pick(ci, float(score[r, ci]), float(rel[r, ci]) if has_vec[r] else 0.0, bool(followed[r, ci])))
        out.append(Ranked(p.subscriber_id, picks, int(qualifying[r])))
    return out


def rank_naive(cands: Candidates, profile: Profile, settings: RankingSettings, k: int) -> list[int]:
    """The same scoring as `rank` written as a per-subscriber Python loop (greedy, one per cluster, no MMR):
    the benchmark's baseline."""
    vec = profile.vector.tolist() if profile.vector is not None else None
    rows = cands.vectors.tolist()
    scored: list[tuple[float, int]] = []
    for i in range(len(cands)):
        if cands.ids[i] in profile.sent:
            continue
        rel = sum(a * b for a, b in zip(vec, rows[i], strict=True)) if vec is not None else 0.0
        fol = cands.show_names[int(cands.show[i])] in profile.followed_shows
        if vec is not None and rel < settings.min_relevance and not fol:
            continue
        s = (
            settings.relevance * rel
            + settings.followed_show * fol
            + settings.importance * float(cands.importance[i])
            + settings.corroboration * float(cands.corroboration[i])
            + settings.freshness * float(cands.freshness[i])
        )
        scored.append((s, i))
    scored.sort(reverse=True)
    seen: set[int] = set()
    picks: list[int] = []
    for _, i in scored:
        c = int(cands.cluster[i])
        if c in seen:
            continue
        seen.add(c)
        picks.append(i)
        if len(picks) == k:
            break
    return picks
