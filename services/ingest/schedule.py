"""When a feed is polled next: its publishing cadence, jitter, and backoff after failures. Pure functions."""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from podbrief_ingest.parser import ParsedItem
from podbrief_ingest.settings import IngestSettings


def cadence_interval(
    items: Sequence[ParsedItem], settings: IngestSettings, update_frequency: dict[str, str] | None
) -> float:
    """How often to poll, from how often the feed publishes: a quarter of the median gap between its
    recent episodes, within the configured bounds. A feed marked complete is polled as rarely as allowed."""
    lo, hi = float(settings.min_poll_interval_s), float(settings.max_poll_interval_s)
    if update_frequency and update_frequency.get("complete", "").lower() == "true":
        return hi
    dates = sorted((it.published_at for it in items if it.published_at), reverse=True)[:20]
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(dates) if a > b]
    if len(gaps) < 2:
        return min(hi, max(lo, float(settings.poll_interval_s)))
    return min(hi, max(lo, float(statistics.median(gaps)) / 4))


def jittered(now: datetime, interval_s: float, jitter: float, rng: random.Random) -> datetime:
    return now + timedelta(seconds=interval_s * rng.uniform(1 - jitter, 1 + jitter))


def backoff_s(error_count: int, settings: IngestSettings) -> float:
    return float(min(settings.error_backoff_max_s, settings.error_backoff_base_s * 2 ** max(0, error_count - 1)))
