"""The corpus: committed fixtures under feeds/ (sources and licences in README.md) and the shared real-world
feeds under ../shared/data/feeds/real-world. Nothing here imports podbrief, so the reference reader can use it."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3].parent / "shared" / "data" / "feeds" / "real-world"
# Every fixture is read as if fetched from here, so relative URLs resolve the same way for both readers.
BASE = "https://corpus.podbrief.test/"


def fixtures() -> dict[str, Path]:
    """Corpus name -> file."""
    feeds = sorted((HERE / "feeds").rglob("*"))
    out = {str(p.relative_to(HERE / "feeds")): p for p in feeds if p.is_file() and p.name != "LICENSE"}
    out.update({f"shared/{p.name}": p for p in sorted(SHARED.glob("*.xml"))})
    return out


def corpus_url(name: str) -> str:
    return BASE + name
