"""Short keyword labels for clusters, c-TF-IDF style: terms frequent in one cluster, rare in the others."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

STOPWORDS = frozenset(
    """
a about above after again against all almost also am among an and any are aren as at be because been before
being below between both but by can cannot could did do does doing don down during each even ever every few
for from further get gets getting got had has have having he her here hers herself him himself his how however
i if in into is isn it its itself just last least less like likely made make makes making many may me might
more most much must my myself near nearly never new no nor not now of off often on once one only or other
our ours ourselves out over own per rather really said same say says she should since so some still such
than that the their theirs them themselves then there these they thing things this those though through thus
to too two under until up upon us use used uses using very via was we were what when where whether which
while who whom whose why will with within without would yet you your yours yourself yourselves already
around back based big even far first go goes going good great keep kind know lot lots next part people put
right see seem seems show shows take takes tell think time times today way ways well year years day days
""".split()
)

_WORD = re.compile(r"[a-z][a-z0-9'-]*[a-z0-9]|[a-z]")


def _singular(word: str) -> str:
    # Just enough folding that "model" and "models" count as one term in a label.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    words = [w.strip("'-") for w in _WORD.findall(text.lower())]
    out = []
    for w in words:
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) > 2 and w not in STOPWORDS and not w.isdigit():
            out.append(_singular(w))
    return out


class TermStats:
    """Corpus-wide term frequencies, kept up to date as insights arrive, so one cluster's label can be
    recomputed without rereading every other cluster."""

    def __init__(self) -> None:
        self.total: Counter[str] = Counter()

    def add(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.total.update(terms(text))

    def label(self, texts: Sequence[str], clusters: int, top: int = 3) -> str:
        """c-TF-IDF: tf(t, c) * log(1 + A / f(t)), A the mean number of words per cluster and f(t) the
        frequency of t over all clusters. Ties go alphabetically so labels are stable between runs."""
        counts = Counter(t for d in texts for t in terms(d))
        n = sum(counts.values()) or 1
        avg = sum(self.total.values()) / max(clusters, 1)
        scored = [((cnt / n) * math.log(1 + avg / max(self.total[t], cnt)), t) for t, cnt in counts.items()]
        best = sorted(scored, key=lambda st: (-st[0], st[1]))[:top]
        return " · ".join(t for _, t in best)


def ctfidf_labels(docs: Mapping[K, Sequence[str]], top: int = 3) -> dict[K, str]:
    """Label every cluster at once from its members' texts."""
    stats = TermStats()
    for texts in docs.values():
        stats.add(texts)
    return {k: stats.label(texts, len(docs), top) for k, texts in docs.items()}
