"""The delivery benchmark's peer, a per-subscriber numpy loop, applies the same rules as the vectorised ranking:
the same five picks, in the same order, for every subscriber of a synthetic day."""

from __future__ import annotations

import numpy as np
import pytest
from podbrief_delivery.ranking import rank
from podbrief_delivery.settings import RankingSettings

from bench.delivery import candidates, profiles, rank_loop

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("min_relevance", [-1.0, 0.05])
def test_the_numpy_loop_picks_what_the_vectorised_ranking_picks(min_relevance: float) -> None:
    cands = candidates(800, np.random.default_rng(3))
    settings = RankingSettings(min_relevance=min_relevance)
    subs = profiles(120, cands, np.random.default_rng(4))
    static = (
        settings.importance * cands.importance
        + settings.corroboration * cands.corroboration
        + settings.freshness * cands.freshness
    ).astype(np.float32)
    fast = rank(cands, subs, settings, 5)
    assert any(r.picks for r in fast)
    for p, r in zip(subs, fast, strict=True):
        assert rank_loop(cands, static, p, settings, 5) == [x.index for x in r.picks]
