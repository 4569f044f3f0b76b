"""A split e2e run: the second part (`--keep-embedded`) keeps the embedded runs the first part wrote, with the
first part's date, and refuses when there are none."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import e2e, report

pytestmark = pytest.mark.unit

ROWS = [
    {"episode": "a", "feed update to brief_s": 150.0, "cpu_s": 210.0, "peak_rss_mb": 2400},
    {"episode": "b", "exit_code": 1},
]


def test_the_embedded_runs_and_their_date_are_kept(tmp_path: Path) -> None:
    first = report.update_section(
        e2e.KEY,
        title=e2e.TITLE,
        command="python -m bench.e2e --stream 0",
        details={e2e.EMBEDDED_TABLE: ROWS},
        extra={"embedded": {"runs": 2}},
        out_dir=tmp_path,
    )
    runs, date = e2e.kept_embedded(tmp_path)
    assert date == first["date"]
    assert [r.row for r in runs] == ROWS
    assert [r.ok for r in runs] == [True, False]
    assert (runs[0].cpu_s, runs[0].peak_rss_mb) == (210.0, 2400)

    # Kept again (a third part): still the date of the run that measured them.
    report.update_section(
        e2e.KEY,
        title=e2e.TITLE,
        command="python -m bench.e2e --keep-embedded",
        details={e2e.EMBEDDED_TABLE: ROWS},
        extra={"embedded": {"runs": 2, "kept_from": date}},
        out_dir=tmp_path,
    )
    assert e2e.kept_embedded(tmp_path)[1] == date


def test_without_embedded_runs_it_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no embedded runs"):
        e2e.kept_embedded(tmp_path)
