"""What `podbrief run` is asked to do (light to import: the CLI builds it before anything heavy loads)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class RunOptions:
    feeds: Sequence[str] = ()
    all_feeds: bool = False
    data_dir: Path = Path(".data")
    fresh: bool = False
    force: bool = False
    email: str = "you@example.com"
    interests: str = "artificial intelligence, small language models, energy prices, home batteries, sleep and health"
    # The default CPU model takes minutes per episode (make eval-extraction measured 40 CPU-minutes per audio hour
    # on 2 cores), so a run over a few hour-long episodes takes hours: the limit only stops a run that stalled.
    timeout_s: float = 4 * 3600.0
    # Settings per service, over the runner's own (tests: no Whisper warm-up, an LLM stand-in).
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
