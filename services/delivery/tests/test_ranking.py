"""Ranking properties on a synthetic day: relevance wins, one pick per cluster, no repeats, followed shows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from podbrief_delivery.ranking import Candidates, Profile, rank, rank_naive
from podbrief_delivery.settings import RankingSettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
DIM = 32


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def synthetic_day(seed: int = 7, clusters: int = 12, per_cluster: int = 4) -> tuple[Candidates, np.ndarray]:
    """`clusters` topics (orthogonal directions), each said `per_cluster` times by different shows."""
    rng = np.random.default_rng(seed)
    centers = np.eye(DIM, dtype=np.float32)[:clusters]
    ids, vecs, cl, shows, imp, sizes, nshows, times = [], [], [], [], [], [], [], []
    for c in range(clusters):
        cid = uuid.uuid5(uuid.NAMESPACE_DNS, f"cluster{c}")
        for j in range(per_cluster):
            ids.append(uuid.uuid5(uuid.NAMESPACE_DNS, f"i{c}-{j}"))
            vecs.append(unit(centers[c] + 0.15 * rng.standard_normal(DIM).astype(np.float32)))
            cl.append(cid)
            shows.append(f"Show {(c + j) % 7}")
            imp.append(0.5)
            sizes.append(per_cluster)
            nshows.append(per_cluster)
            times.append(NOW - timedelta(hours=2 + j))
    cands = Candidates.build(
        ids=ids,
        vectors=np.stack(vecs),
        importance=imp,
        cluster_ids=cl,
        cluster_sizes=sizes,
        cluster_shows=nshows,
        shows=shows,
        times=times,
        now=NOW,
        settings=RankingSettings(),
    )
    return cands, centers


def cluster_of(cands: Candidates, index: int) -> int:
    return int(cands.cluster[index])


def test_relevance_wins_and_one_pick_per_cluster() -> None:
    cands, centers = synthetic_day()
    # Interested mostly in topic 3, a bit in topic 5.
    interest = unit(centers[3] + 0.6 * centers[5])
    [r] = rank(cands, [Profile(uuid.uuid4(), interest)], RankingSettings(min_relevance=-1.0), k=5)
    assert len(r.picks) == 5
    picked_clusters = [cluster_of(cands, p.index) for p in r.picks]
    assert picked_clusters[0] == cluster_of(cands, cands.index[uuid.uuid5(uuid.NAMESPACE_DNS, "i3-0")])
    assert picked_clusters[1] == cluster_of(cands, cands.index[uuid.uuid5(uuid.NAMESPACE_DNS, "i5-0")])
    assert len(set(picked_clusters)) == 5, "at most one pick per cluster"
    assert r.picks[0].relevance > r.picks[-1].relevance


def test_importance_and_corroboration_break_ties_when_relevance_is_equal() -> None:
    cands, _ = synthetic_day()
    cands.importance[cands.index[uuid.uuid5(uuid.NAMESPACE_DNS, "i8-2")]] = 1.0
    [r] = rank(cands, [Profile(uuid.uuid4(), None)], RankingSettings(), k=3)
    assert r.picks[0].index == cands.index[uuid.uuid5(uuid.NAMESPACE_DNS, "i8-2")]


def test_already_sent_insights_are_never_picked_again() -> None:
    cands, centers = synthetic_day(per_cluster=2)
    interest = unit(centers[3])
    sub = uuid.uuid4()
    sent: set[uuid.UUID] = set()
    seen_days: list[set[uuid.UUID]] = []
    for _ in range(4):
        [r] = rank(cands, [Profile(sub, interest, sent=frozenset(sent))], RankingSettings(min_relevance=-1), k=5)
        day = {cands.ids[p.index] for p in r.picks}
        assert not day & sent
        seen_days.append(day)
        sent |= day
    assert len(sent) == sum(len(d) for d in seen_days)


def test_followed_shows_are_favoured() -> None:
    cands, centers = synthetic_day()
    interest = unit(centers[0] + centers[1] + centers[2] + centers[3])  # equal interest in four topics
    base = rank(cands, [Profile(uuid.uuid4(), interest)], RankingSettings(), k=5)[0]
    # Follow a show that only appears low in the unfollowed ranking.
    target_show = cands.show_names[int(cands.show[base.picks[-1].index])]
    followed = rank(
        cands,
        [Profile(uuid.uuid4(), interest, followed_shows=frozenset({target_show}))],
        RankingSettings(),
        k=5,
    )[0]
    assert cands.show_names[int(cands.show[followed.picks[0].index])] == target_show
    assert followed.picks[0].followed


def test_quiet_day_counts_only_qualifying_candidates() -> None:
    cands, _ = synthetic_day(clusters=3)
    far = unit(np.eye(DIM, dtype=np.float32)[20])  # a topic nobody talked about today
    [r] = rank(cands, [Profile(uuid.uuid4(), far)], RankingSettings(min_relevance=0.3), k=5)
    assert r.picks == [] and r.qualifying == 0


def test_vectorised_batch_matches_the_naive_loop_without_mmr() -> None:
    cands, _ = synthetic_day(seed=3)
    rng = np.random.default_rng(1)
    settings = RankingSettings(mmr_lambda=1.0, min_relevance=-1.0)
    profiles = [
        Profile(
            uuid.uuid4(),
            unit(rng.standard_normal(DIM).astype(np.float32)),
            followed_shows=frozenset({"show 2"}) if i % 2 else frozenset(),
        )
        for i in range(40)
    ]
    fast = rank(cands, profiles, settings, k=5)
    for p, r in zip(profiles, fast, strict=True):
        assert [x.index for x in r.picks] == rank_naive(cands, p, settings, 5)


def test_mmr_prefers_a_different_topic_over_a_near_duplicate() -> None:
    # Two clusters that say almost the same thing, and a third, different one.
    a = unit(np.eye(DIM, dtype=np.float32)[0])
    b = unit(a + 0.05 * np.eye(DIM, dtype=np.float32)[1])
    c = unit(np.eye(DIM, dtype=np.float32)[0] * 0.6 + np.eye(DIM, dtype=np.float32)[2])
    ids = [uuid.uuid4() for _ in range(3)]
    cands = Candidates.build(
        ids=ids,
        vectors=np.stack([a, b, c]),
        importance=[0.5] * 3,
        cluster_ids=[uuid.uuid4() for _ in range(3)],
        cluster_sizes=[1] * 3,
        cluster_shows=[1] * 3,
        shows=["A", "B", "C"],
        times=[NOW] * 3,
        now=NOW,
        settings=RankingSettings(),
    )
    interest = unit(np.eye(DIM, dtype=np.float32)[0] + 0.5 * np.eye(DIM, dtype=np.float32)[2])
    [r] = rank(cands, [Profile(uuid.uuid4(), interest)], RankingSettings(mmr_lambda=0.5, min_relevance=-1), k=2)
    assert [p.index for p in r.picks] == [0, 2]
