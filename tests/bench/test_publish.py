"""The README's benchmark section (bench/publish.py) is rendered from results.json: each section's headline beside
when it was measured and whether the machine was quiet, peers labelled when not measured, and the capacity
model's summary computed from the same results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from podbrief.generated import sections

from bench import publish, report

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "bench" / "results.json"


def _run(quiet: bool) -> dict[str, Any]:
    return {
        "run_id": "2026-12-05T01:00:00Z",
        "wall_s": 60.0,
        "peak_rss_mb": 200.0,
        "cpu_s": 55.0,
        "sample_interval_s": 2.0,
        "load": {
            "started_at": "2026-12-05T01:00:00+00:00",
            "ended_at": "2026-12-05T01:01:00+00:00",
            "wall_s": 60.0,
            "samples": 31,
            "cores": 2,
            "load1_min": 0.9,
            "load1_mean": 1.0,
            "load1_max": 1.2,
            "busy_cores": 1.0 if quiet else 1.9,
            "own_cores": 0.95,
            "others_cores": 0.05 if quiet else 0.95,
            "steal_pct": 0.0,
            "quiet": quiet,
        },
    }


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Any]:
    report.update_section(
        "delivery",
        title="Delivery",
        command="python -m bench.delivery",
        comparisons=[report.Comparison("delivery", "rank", "s", 2.0, "numpy loop", 8.0, "lower")],
        headline=[("delivery ranking", "2.0 s vs 8.0 s")],
        out_dir=tmp_path,
    )
    report.update_section(
        "ingest",
        title="Ingest",
        command="python -m bench.ingest",
        comparisons=[
            report.Comparison(
                "ingest", "time for all", "s", 10.0, "loop", 40.0, "lower", peer_basis="extrapolated from 100 feeds"
            )
        ],
        out_dir=tmp_path,
    )
    loaded = report.load(tmp_path)
    loaded["sections"]["delivery"]["extra"]["run"] = _run(quiet=True)
    loaded["sections"]["ingest"]["extra"]["run"] = _run(quiet=False)
    return loaded


def test_each_headline_beside_when_and_how_busy(data: dict[str, Any]) -> None:
    text = publish.render(data, COMMITTED)
    assert "| delivery ranking | 2.0 s vs 8.0 s | 2026-12-05 01:00 UTC, 60 s, load avg 1.00, quiet |" in text
    # A section without a headline of its own shows its first comparison, its peer's basis and the machine state.
    assert "| Ingest: time for all | 10.00 s vs loop 40.00 s (extrapolated from 100 feeds); ratio 0.25" in text
    assert "SHARED: other processes used 0.95 cores" in text
    assert "Measured while other processes used the cores: ingest." in text
    assert "million Qdrant points" in text


def test_results_md_states_the_times_and_the_load_of_each_section(data: dict[str, Any]) -> None:
    md = report.render(data)
    assert "Measured 2026-12-05T01:00:00+00:00 → 2026-12-05T01:01:00+00:00 (60 s)" in md
    assert "| extrapolated |" in md and "| measured |" in md
    assert "**shared: other processes used the cores during this section**" in md
    # One line says which sections were measured quiet and which SHARED, with when.
    assert "Quiet: delivery (2026-12-05 01:00 UTC); SHARED: ingest (2026-12-05 01:00 UTC)." in md


def test_a_section_without_a_load_record_is_listed_as_such(data: dict[str, Any]) -> None:
    del data["sections"]["ingest"]["extra"]["run"]
    date = data["sections"]["ingest"]["date"]
    md = report.render(data)
    assert f"; load not recorded: ingest ({date[:16].replace('T', ' ')} UTC)." in md
    assert "whether other work shared the cores is unknown" in md


def test_the_readme_section_is_rewritten_in_place(data: dict[str, Any], tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- generated:bench -->\n<!-- /generated:bench -->\nrest\n")
    publish.write_readme(data, readme=readme, results=COMMITTED)
    [s] = sections(readme.read_text())
    assert s.name == "bench" and not s.hand_edited and "delivery ranking" in s.body
    assert readme.read_text().endswith("<!-- /generated:bench -->\nrest\n")


def test_a_peer_basis_is_measured_or_an_extrapolation() -> None:
    with pytest.raises(ValueError, match="peer_basis"):
        report.Comparison("x", "m", "s", 1.0, "p", 2.0, "lower", peer_basis="estimated")
    bad = {"schema_version": report.SCHEMA_VERSION, "sections": {"x": json.loads(json.dumps(_section()))}}
    assert any("neither measured nor extrapolated" in p for p in report.validate(bad))


def _section() -> dict[str, Any]:
    c = {k: 1 for k in ("stage", "metric", "unit", "podbrief", "peer_name", "peer", "ratio")}
    return {
        "title": "x",
        "command": "x",
        "date": "2026-12-05",
        "machine": {},
        "comparisons": [{**c, "better": "lower", "peer_basis": "guessed"}],
        "floors": [],
        "details": {},
    }


def test_the_committed_results_md_is_rendered_from_results_json() -> None:
    """bench/RESULTS.md is the renderer's output for bench/results.json, never edited by hand."""
    committed = COMMITTED.parent / "RESULTS.md"
    assert committed.read_text() == report.render(report.load(COMMITTED.parent))
