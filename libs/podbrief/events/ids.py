"""Deterministic ids. The same feed item always maps to the same episode id, and so on downstream, which is
what makes redelivery an upsert rather than a duplicate (and the id doubles as the Qdrant point id)."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import date

# Fixed namespace for podbrief ids; changing it would re-key every stored object.
NAMESPACE = uuid.UUID("6f1f3c5e-2a0b-5b7e-9a51-0c2d7f1e9b34")


def _norm_url(url: str) -> str:
    return url.strip()


def feed_id(feed_url: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "feed:" + _norm_url(feed_url))


def episode_id(feed_url: str, guid: str | None, enclosure_url: str | None = None) -> uuid.UUID:
    """uuid5 of the feed URL and the item's guid; without a guid, of its enclosure URL."""
    ident = (guid or "").strip() or (enclosure_url or "").strip()
    if not ident:
        raise ValueError("an episode needs a guid or an enclosure URL to be identified")
    return uuid.uuid5(NAMESPACE, "episode:" + _norm_url(feed_url) + "\n" + ident)


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def insight_id(episode: uuid.UUID, quote: str, start_s: float) -> uuid.UUID:
    """Keyed on the grounded quote and its second, not on the model's wording, so a re-extraction of
    the same passage keeps its id."""
    digest = hashlib.sha1(normalise_text(quote).encode()).hexdigest()
    return uuid.uuid5(NAMESPACE, f"insight:{episode}:{int(start_s)}:{digest}")


def event_id(event_type: str, key: object) -> uuid.UUID:
    """The id of the one event of `event_type` about `key` (an episode id, an insight id, "brief:status"): a
    re-publication after a crash or a redelivery carries the same id, so consumers can drop it."""
    return uuid.uuid5(NAMESPACE, f"{event_type}:{key}")


def brief_id(subscriber: uuid.UUID, day: date) -> uuid.UUID:
    """One brief per subscriber per day: also the delivery ledger's idempotency key."""
    return uuid.uuid5(NAMESPACE, f"brief:{subscriber}:{day.isoformat()}")
