"""The parser against real-world feeds no one here wrote, checked against an independent second reading.

corpus/feeds/ holds 71 feeds from six feed-parser test suites and a podcast library's captured feeds (sources,
commits and licences in corpus/README.md); the ten shared real-world feeds make 81. corpus/reference.json is
what feedparser, read directly with the small mapping in corpus/make_reference.py, sees in each: its episodes'
guids, enclosure URLs, dates and links. Every place podbrief reads a fixture differently is listed in
corpus/disagreements.json and classified:

- `podbrief_bug_fixed`: podbrief used to read it wrong (the `was` value) and now agrees with the reference;
- `reference_bug`: the reference is wrong, and why;
- `deliberate`: podbrief chooses differently on purpose, and why.

A disagreement that is not listed fails, and so does a listed one that no longer happens: the list is the
exact difference between the two readings."""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urljoin

import pytest
from podbrief.errors import PipelineError
from podbrief_ingest.parser import DROP_REASONS, parse_feed

from .corpus.catalog import HERE as CORPUS
from .corpus.catalog import corpus_url, fixtures

pytestmark = pytest.mark.unit

CLASSES = frozenset({"podbrief_bug_fixed", "reference_bug", "deliberate"})
KINDS = frozenset({"error", "count", "missing", "extra", "enclosure", "published", "link"})


@cache
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CORPUS / "reference.json").read_text("utf-8"))["fixtures"]
    return data


@cache
def rules() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((CORPUS / "disagreements.json").read_text("utf-8"))["disagreements"]
    return data


def _second(iso: str | None) -> str | None:
    # The reference keeps whole seconds (feedparser's time.struct_time); compare at that precision.
    return iso[:19] if iso else None


def podbrief_reading(name: str) -> dict[str, Any]:
    path = fixtures()[name]
    try:
        feed = parse_feed(path.read_bytes(), corpus_url(name))
    except PipelineError as exc:
        return {"error": exc.reason, "episodes": {}, "count": 0, "dropped": {}}
    episodes: dict[str, dict[str, Any]] = {}
    for it in feed.items:
        episodes.setdefault(
            it.guid,
            {
                "enclosure": it.enclosure_url,
                "published": _second(it.published_at.isoformat() if it.published_at else None),
                "link": it.link,
            },
        )
    return {"error": None, "episodes": episodes, "count": len(feed.items), "dropped": dict(feed.dropped)}


def reference_reading(name: str) -> dict[str, Any]:
    """The reference's episodes keyed as podbrief keys its own: by guid, else by the enclosure URL resolved
    against the document's URL (an item's identity when it has no guid)."""
    raw = reference()[name]["episodes"]
    episodes: dict[str, dict[str, Any]] = {}
    for e in raw:
        key = (e["guid"] or "").strip() or urljoin(corpus_url(name), (e["enclosure"] or "").strip())
        if key == corpus_url(name):
            key = ""  # neither guid nor enclosure
        episodes.setdefault(
            key,
            {"enclosure": e["enclosure"], "published": _second(e["published"]), "link": e["link"]},
        )
    return {"episodes": episodes, "count": len(raw)}


def observed(name: str) -> list[dict[str, Any]]:
    """Every disagreement between the two readings of one fixture, as {kind, key, podbrief, reference}."""
    ours, theirs = podbrief_reading(name), reference_reading(name)
    out: list[dict[str, Any]] = []
    if ours["error"]:
        out.append({"kind": "error", "key": "", "podbrief": ours["error"], "reference": theirs["count"]})
        return out
    if ours["count"] != theirs["count"]:
        out.append(
            {
                "kind": "count",
                "key": "",
                "podbrief": {"episodes": ours["count"], "dropped": ours["dropped"]},
                "reference": theirs["count"],
            }
        )
    for key in theirs["episodes"].keys() - ours["episodes"].keys():
        out.append({"kind": "missing", "key": key, "podbrief": None, "reference": key})
    for key in ours["episodes"].keys() - theirs["episodes"].keys():
        out.append({"kind": "extra", "key": key, "podbrief": key, "reference": None})
    for key in ours["episodes"].keys() & theirs["episodes"].keys():
        for field in ("enclosure", "published", "link"):
            a, b = ours["episodes"][key][field], theirs["episodes"][key][field]
            if a != b:
                out.append({"kind": field, "key": key, "podbrief": a, "reference": b})
    return sorted(out, key=lambda d: (d["kind"], d["key"]))


def _matches(rule: dict[str, Any], found: dict[str, Any]) -> bool:
    if rule["kind"] != found["kind"]:
        return False
    if rule.get("key", "") == "*":
        return True
    if rule.get("key", "") != found["key"]:
        return False
    return all(rule[side] == found[side] for side in ("podbrief", "reference") if side in rule)


def test_corpus_size_sources_and_licences() -> None:
    names = fixtures()
    assert len(names) >= 60
    assert set(reference()) == set(names), "reference.json is stale: run corpus/make_reference.py"
    readme = (CORPUS / "README.md").read_text("utf-8")
    for name in names:
        if name.startswith("shared/"):
            continue
        source = name.split("/", 1)[0]
        assert (CORPUS / "feeds" / source / "LICENSE").is_file(), source
        assert f"`{name.split('/', 1)[1]}`" in readme, f"{name} is not listed in corpus/README.md"


def test_disagreement_list_is_well_formed() -> None:
    names = set(fixtures())
    for rule in rules():
        assert rule["fixture"] in names, rule
        assert rule["kind"] in KINDS and rule["class"] in CLASSES, rule
        assert len(rule.get("reason", "")) >= 20, f"say why: {rule}"
        if rule.get("key") == "*":
            assert isinstance(rule.get("count"), int), f"a wildcard rule states how many it covers: {rule}"
        if rule["class"] == "podbrief_bug_fixed":
            assert "was" in rule, f"a fixed bug records what podbrief used to read: {rule}"


@pytest.mark.parametrize("name", sorted(fixtures()))
def test_fixture_agrees_with_the_reference_or_the_difference_is_classified(name: str) -> None:
    found = observed(name)
    mine = [r for r in rules() if r["fixture"] == name]
    open_rules = [r for r in mine if r["class"] != "podbrief_bug_fixed"]
    unexplained = [f for f in found if not any(_matches(r, f) for r in open_rules)]
    assert not unexplained, f"unclassified disagreements in {name}: {json.dumps(unexplained, indent=1)}"
    for rule in open_rules:
        hits = [f for f in found if _matches(rule, f)]
        assert hits, f"listed disagreement no longer happens (remove it from disagreements.json): {rule}"
        if rule.get("key") == "*":
            assert len(hits) == rule["count"], (rule, len(hits))
    for rule in mine:
        if rule["class"] == "podbrief_bug_fixed":
            # Fixed: that part of the two readings agrees now.
            still = [f for f in found if f["kind"] == rule["kind"] and f["key"] == rule.get("key", "")]
            assert not still, f"a bug listed as fixed is back: {rule} -> {still}"


@pytest.mark.parametrize("name", sorted(fixtures()))
def test_no_episode_a_lenient_reader_sees_is_lost_silently(name: str) -> None:
    """Every reference episode podbrief does not list is accounted for by a counted drop reason."""
    ours, theirs = podbrief_reading(name), reference_reading(name)
    if theirs["count"]:
        assert ours["error"] is None, f"{name}: podbrief rejects a feed the reference reads ({ours['error']})"
    assert set(ours["dropped"]) <= set(DROP_REASONS)
    missing = theirs["count"] - ours["count"]
    assert missing <= sum(ours["dropped"].values()), (name, missing, ours["dropped"])


def test_the_reference_is_not_podbrief() -> None:
    for script in ("make_reference.py", "catalog.py"):
        source = (CORPUS / script).read_text("utf-8")
        assert "import podbrief" not in source and "from podbrief" not in source, script
