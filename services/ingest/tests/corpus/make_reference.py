"""Write reference.json: the corpus read by feedparser, a parser independent of podbrief's, run once.

    .venv/bin/python services/ingest/tests/corpus/make_reference.py

The mapping from feedparser's result to "the episodes a reader sees" is deliberately small and is the whole of
this file's judgement:

- every entry in `entries` is an episode, in document order;
- guid: `entry.id` (RSS <guid>, Atom <id>), or null;
- enclosure: the first of `entry.enclosures` (RSS <enclosure>, Atom rel="enclosure") and then
  `entry.media_content` whose type is audio/* or video/*; when none is typed so, the first of them; or null;
- published: `published_parsed`, else `updated_parsed`, as UTC ISO 8601, or null;
- link: `entry.link`, or null.

feedparser is given the fixture's corpus URL as the document's location (Content-Location), so it resolves
relative URLs against the same base podbrief is given. Nothing here imports podbrief."""

from __future__ import annotations

import calendar
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from catalog import corpus_url, fixtures  # noqa: E402


def _when(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed"):
        t = entry.get(key)
        if t:
            return datetime.fromtimestamp(calendar.timegm(t), UTC).isoformat()
    return None


def _media(entry: Any) -> str | None:
    candidates = [(e.get("href"), e.get("type")) for e in entry.get("enclosures") or []]
    candidates += [(m.get("url"), m.get("type")) for m in entry.get("media_content") or []]
    candidates = [(u, t or "") for u, t in candidates if u]
    for url, kind in candidates:
        if kind.lower().startswith(("audio/", "video/")):
            return str(url)
    return str(candidates[0][0]) if candidates else None


def read(body: bytes, url: str) -> dict[str, Any]:
    d = feedparser.parse(body, response_headers={"content-location": url, "content-type": "application/xml"})
    return {
        "bozo": bool(d.bozo),
        "episodes": [
            {
                "guid": e.get("id") or None,
                "enclosure": _media(e),
                "published": _when(e),
                "link": e.get("link") or None,
            }
            for e in d.entries
        ],
    }


def main() -> int:
    out = {name: read(path.read_bytes(), corpus_url(name)) for name, path in fixtures().items()}
    out = {"reader": f"feedparser {feedparser.__version__}", "fixtures": out}
    (HERE / "reference.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    sys.stdout.write(f"{len(out['fixtures'])} fixtures\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
