"""Re-clustering a window keeps the ids of clusters that persist."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from podbrief_clustering.app import open_clusterer
from podbrief_clustering.clusterer import Item

from .conftest import episodes_of, insight_for, make_settings

pytestmark = pytest.mark.slow


async def test_cluster_ids_survive_reclustering(
    tmp_path: Path, labelled: list[dict[str, Any]], real_embedder: Any
) -> None:
    topic_of = {insight_for(r, 0).insight_id: r["topic"] for r in labelled}
    async with open_clusterer(make_settings(tmp_path), embedder=real_embedder) as clusterer:
        for ep, insights in episodes_of(labelled):
            await clusterer.process([Item(ep, i) for i in insights])
        before = {i: m.cluster_id for i, m in (await clusterer.repo.members(topic_of)).items()}
        report = await clusterer.recluster()
        after = {i: m.cluster_id for i, m in (await clusterer.repo.members(topic_of)).items()}
        second = await clusterer.recluster()
        again = {i: m.cluster_id for i, m in (await clusterer.repo.members(topic_of)).items()}
        stored = await clusterer.repo.clusters()

    names = {c: f"c{n}" for n, c in enumerate(dict.fromkeys([*before.values(), *after.values()]))}
    for topic in sorted(set(topic_of.values())):
        b = Counter(names[before[i]] for i, t in topic_of.items() if t == topic)
        a = Counter(names[after[i]] for i, t in topic_of.items() if t == topic)
        print(topic, dict(b), "->", dict(a))  # noqa: T201
    print(report)  # noqa: T201
    # Where online assignment found a topic's cluster (most of the topic in one cluster), re-clustering
    # keeps that cluster's id for the topic.
    checked = 0
    for topic in set(topic_of.values()):
        ids = [i for i, t in topic_of.items() if t == topic]
        main_before, n = Counter(before[i] for i in ids).most_common(1)[0]
        if n >= 0.6 * len(ids):
            checked += 1
            assert Counter(after[i] for i in ids).most_common(1)[0][0] == main_before, topic
    assert checked >= 5
    assert report.kept >= 6 and report.moved < len(topic_of) // 3
    assert sum(before[i] == after[i] for i in topic_of) >= 0.8 * len(topic_of)
    # A second run over the same window finds nothing to change.
    assert again == after and second.moved == 0
    # The bookkeeping follows: sizes add up and every member's cluster exists.
    assert set(after.values()) <= set(stored)
    assert sum(c.size for c in stored.values()) == len(topic_of)
    assert all(c.label for c in stored.values())
