"""The fault suite's README sections (tests/faults/publish.py) are rendered from what a run recorded, and only
from a run fit to publish: a complete fault table without failures, fresh back-pressure and shutdown figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from podbrief.generated import sections

pytestmark = pytest.mark.unit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
import faultkit  # noqa: E402
import publish  # noqa: E402

DOC = "".join(f"<!-- generated:{n} -->\n<!-- /generated:{n} -->\n" for n in ("faults", "backpressure", "shutdown"))
LOAD = {
    "started_at": "2026-12-05T00:00:00+00:00",
    "ended_at": "2026-12-05T00:30:00+00:00",
    "load1_min": 1.0,
    "load1_mean": 1.5,
    "load1_max": 2.2,
    "cores": 2,
    "quiet": True,
    "others_cores": 0.05,
}
BACKPRESSURE: dict[str, Any] = {
    "recorded_at": "2026-12-05T00:10:00Z",
    "flood": 1000,
    "lag_after_100": 99,
    "lag_after_1000": 999,
    "transcription": {"after_100_max_mb": 402.0, "after_1000_max_mb": 422.5, "peak_mb": 430.0},
    "ingest": {"after_100_max_mb": 116.0, "after_1000_max_mb": 123.0, "peak_mb": 125.0},
    "bounds": {
        "transcription_peak_mb": 900,
        "ingest_peak_mb": 400,
        "growth_100_to_1000_mb": 50,
        "transcription_growth_100_to_1000_mb": 100,
    },
    "extraction_large_messages": {
        "recorded_at": "2026-12-05T00:20:00Z",
        "backlog_mb": 63.0,
        "lag_after_1000": 990,
        "extraction": {"after_100_max_mb": 118.3, "after_1000_max_mb": 118.4, "peak_mb": 120.0},
    },
}
SHUTDOWN = {
    "ingest: SIGTERM while a feed poll waits": {
        "service": "ingest",
        "shutdown_timeout_s": 3,
        "bound_s": 10,
        "exit_code": 0,
        "seconds_to_exit": 1.42,
        "in_flight": "abandoned",
        "recorded_at": "2026-12-05T00:25:00Z",
    }
}


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(DOC)
    monkeypatch.setattr(publish, "README", readme)
    monkeypatch.setattr(faultkit, "ARTIFACTS", tmp_path / "faults")
    rows = [
        faultkit.Row("baseline", 12, 12, 0, 0, 0, 0, "1/1", 16.6, "no fault"),
        faultkit.Row("postgres-down-15s", 12, 12, 3, 0, 0, 0, "1/1", 31.6, "down 16 s", {"ingest": 1}),
    ]
    faultkit.write_results(rows, 1800.0, LOAD, complete=True)
    # write_results stamps the wall clock; pin it to the run the LOAD figures describe, so that the freshness
    # checks below do not depend on the day the test runs.
    results = faultkit.ARTIFACTS / "results.json"
    results.write_text(json.dumps({**json.loads(results.read_text()), "recorded_at": "2026-12-05T00:30:00Z"}))
    (tmp_path / "faults" / "backpressure.json").write_text(json.dumps(BACKPRESSURE))
    (tmp_path / "faults" / "shutdown.json").write_text(json.dumps(SHUTDOWN))
    return tmp_path / "faults"


def test_every_section_is_written_from_the_recorded_figures(artifacts: Path) -> None:
    assert publish.from_artifacts(artifacts) == ["faults", "backpressure", "shutdown"]
    got = {s.name: s for s in sections(publish.README.read_text())}
    assert not any(s.hand_edited for s in got.values())
    faults = got["faults"].body
    assert "| supervisor restarts |" in faults and "| postgres-down-15s | down 16 s |" in faults
    assert "| ingest 1 | 1/1 | 31.6 |" in faults and "| 0 | 1/1 | 16.6 |" in faults
    assert "suite wall time 1,800 s" in faults and "load average 1.0–2.2" in faults
    # Each figure beside the bound the test asserts, never a bare "stayed flat".
    bp = got["backpressure"].body
    assert "| transcription | 402.0 | 422.5 | +20.5 | < 100 | 430.0 | < 900 |" in bp
    assert "| ingest | 116.0 | 123.0 | +7.0 | < 50 | 125.0 | < 400 |" in bp
    assert "lag rose from 99 to 999" in bp and "63 MB of large transcripts" in bp
    assert "| 3 | 10 | 0 | 1.4 | abandoned |" in got["shutdown"].body


def test_an_incomplete_or_failed_fault_run_leaves_the_table_alone(artifacts: Path) -> None:
    results = json.loads((artifacts / "results.json").read_text())
    (artifacts / "results.json").write_text(json.dumps({**results, "complete": False}))
    assert "faults" not in publish.from_artifacts(artifacts)
    results["rows"][0]["note"] = "FAILED: never caught up"
    (artifacts / "results.json").write_text(json.dumps(results))
    assert "faults" not in publish.from_artifacts(artifacts)
    assert "<!-- generated:faults -->\n<!-- /generated:faults -->" in publish.README.read_text()


def test_figures_older_than_the_run_are_not_published(artifacts: Path) -> None:
    assert publish.from_artifacts(artifacts, since="2026-12-06") == []
    assert publish.from_artifacts(artifacts, since="2026-12-05") == ["faults", "backpressure", "shutdown"]
