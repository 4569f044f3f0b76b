"""A subscriber's interests as a vector: their own words embedded (the whole text and each phrase), and moved by
their feedback on the insights they were sent (Rocchio). Stored as float32 bytes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from podbrief.embeddings import TextEmbedder
from podbrief_delivery.settings import FeedbackSettings


def split_phrases(interests: str, topics: Sequence[str]) -> list[str]:
    parts = [p.strip(" .-•\t") for p in re.split(r"[,;\n]+", interests)]
    seen: set[str] = set()
    out: list[str] = []
    for p in [*parts, *topics]:
        p = p.strip()
        if p and p.casefold() not in seen and len(out) < 20:
            seen.add(p.casefold())
            out.append(p[:200])
    return out


def to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def from_bytes(raw: bytes | None) -> np.ndarray | None:
    if not raw:
        return None
    return np.frombuffer(raw, dtype=np.float32)


def normalised(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 1e-9 else None


async def embed_interests(interests: str, topics: Sequence[str], *, embedder: TextEmbedder) -> dict[str, Any]:
    """The subscriber columns for these interests. The interest vector is the normalised mean of the whole text
    and each phrase; phrases keep their own vectors to explain picks."""
    phrases = split_phrases(interests, topics)
    whole = " ".join([interests.strip(), *topics]).strip()
    if not whole:
        return {"interest_vector": None, "interest_phrases": [], "embedding_model": None}
    vecs = await asyncio.to_thread(embedder.embed, [whole[:2000], *phrases])
    vec = normalised(vecs.mean(axis=0))
    return {
        "interest_vector": to_bytes(vec) if vec is not None else None,
        "interest_phrases": [
            {"text": p, "vector": [round(float(x), 6) for x in vecs[i + 1]]} for i, p in enumerate(phrases)
        ],
        "embedding_model": embedder.name,
    }


def moved_by_feedback(q: np.ndarray | None, d: np.ndarray, kind: str, feedback: FeedbackSettings) -> np.ndarray | None:
    """Rocchio: q' = normalise(alpha q + beta d) for "up", beta = more_like_this for "more", and
    normalise(alpha q - gamma d) for "down", where d is the insight's vector. Without a usable q, "up" and "more"
    start from d alone and "down" changes nothing (None)."""
    if q is None or q.shape != d.shape:
        return normalised(d) if kind in ("up", "more") else None
    weight = {"up": feedback.beta, "more": feedback.more_like_this, "down": -feedback.gamma}[kind]
    return normalised(feedback.alpha * q + weight * d)
