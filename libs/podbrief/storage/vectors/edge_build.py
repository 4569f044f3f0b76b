"""Child process that builds a closed Qdrant Edge shard's HNSW graph: `python -m podbrief.storage.vectors.edge_build
SHARD_DIR SPEC_JSON`. Edge's optimize() is synchronous and holds the GIL for minutes, so it runs here rather than
in a process that serves; the parent (`edge.build_index_in_child`) holds the store's lock throughout. Prints one
JSON line: points, indexed points before and after, and seconds."""

from __future__ import annotations

import json
import sys
import time

import qdrant_edge as qe

from podbrief.storage.vectors.base import CollectionSpec
from podbrief.storage.vectors.edge import edge_config


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m podbrief.storage.vectors.edge_build SHARD_DIR SPEC_JSON\n")
        return 2
    spec = CollectionSpec(**json.loads(argv[1]))
    shard = qe.EdgeShard.load(argv[0], edge_config(spec))
    try:
        before = shard.info()
        t0 = time.perf_counter()
        changed = shard.optimize()
        seconds = time.perf_counter() - t0
        after = shard.info()
    finally:
        shard.close()
    result = {
        "points": after.points_count,
        "indexed_before": before.indexed_vectors_count,
        "indexed": after.indexed_vectors_count,
        "segments": after.segments_count,
        "optimized": bool(changed),
        "seconds": round(seconds, 1),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
