"""`make bench-smoke`: the whole benchmark harness at tiny sizes, into a temporary directory. Benchmarks are not
tests, so nothing here asserts on speed: only that every stage ran, beside its peer, and that results.json and
RESULTS.md (and CAPACITY.md) are well formed."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench import report

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STAGE_SECTIONS = ["ingest", "transcription", "extraction", "clustering", "delivery"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out_dir = tmp_path_factory.mktemp("bench-smoke")
    logs = ROOT / "test-artifacts" / "bench" / "smoke"
    # PODBRIEF_TEST_KAFKA / PODBRIEF_TEST_PG pass through: the end-to-end bench uses the shared broker and
    # database when they are set (its own namespace and database), and starts its own otherwise.
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out-dir", str(out_dir), "--log-dir", str(logs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    return proc, out_dir


def _logs(out: subprocess.CompletedProcess[str]) -> str:
    logs = ROOT / "test-artifacts" / "bench" / "smoke"
    tails = [
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-25:]) for p in logs.glob("*.log")
    ]
    return out.stdout[-4000:] + out.stderr[-2000:] + "\n".join(tails)


def test_every_stage_runs_and_the_run_succeeds(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = smoke_run
    assert proc.returncode == 0, _logs(proc)
    for stage in [*STAGE_SECTIONS, "e2e", "capacity"]:
        assert re.search(rf"{stage}\s.*ok", proc.stdout), f"{stage} missing from the stage summary\n{proc.stdout}"


def test_results_json_is_well_formed(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out_dir = smoke_run
    data = json.loads((out_dir / "results.json").read_text())
    assert report.validate(data) == []
    assert sorted(data["sections"]) == sorted([*STAGE_SECTIONS, "e2e", "e2e-stream"]), _logs(proc)
    now = datetime.now(UTC)
    for key, section in data["sections"].items():
        assert section["machine"]["cpu"] and section["machine"]["cores"] >= 1, key
        assert now - timedelta(hours=2) < datetime.fromisoformat(section["date"]) <= now, key
        assert section["comparisons"], f"{key} has no comparison with its peer"
        for c in section["comparisons"]:
            # Both figures measured in this run, and the ratio between them.
            assert isinstance(c["podbrief"], int | float) and c["podbrief"] >= 0, (key, c)
            assert isinstance(c["peer"], int | float) and c["peer"] > 0, (key, c)
            assert c["ratio"] == pytest.approx(c["podbrief"] / c["peer"], rel=0.01, abs=0.001), (key, c)
            assert c["peer_name"], (key, c)
            assert c["peer_basis"] == "measured" or c["peer_basis"].startswith("extrapolated from "), (key, c)
    for key in STAGE_SECTIONS:
        floors = data["sections"][key]["floors"]
        assert floors, f"{key} has no floor"
        for f in floors:
            assert f["measured"] > 0 and f["floor"] > 0 and len(f["basis"]) > 30, (key, f)
            assert f["efficiency"] == pytest.approx(f["floor"] / f["measured"], rel=0.01, abs=0.001), (key, f)
    for key, section in data["sections"].items():
        # How the stage ran, recorded by the runner: its own process's peak RSS and CPU, when it started and
        # ended, and the load sampled throughout (at least at its start and its end).
        run = section["extra"]["run"]
        assert run["peak_rss_mb"] > 10 and run["cpu_s"] > 0, key
        load = run["load"]
        assert load["started_at"] <= load["ended_at"] and load["samples"] >= 2, (key, load)
        assert load["load1_min"] <= load["load1_mean"] <= load["load1_max"], (key, load)
        assert load["own_cores"] > 0 and load["others_cores"] >= 0 and load["cores"] >= 1, (key, load)
        assert load["busy_cores"] == pytest.approx(load["own_cores"] + load["others_cores"], abs=0.02), (key, load)
    # One invocation, stages one after another: no two stages' measurements overlap (the sections a stage writes,
    # like e2e and e2e-stream, share that stage's run).
    by_stage: dict[str, set[tuple[str, str]]] = {}
    for s in data["sections"].values():
        run = s["extra"]["run"]
        by_stage.setdefault(run["stage"], set()).add((run["load"]["started_at"], run["load"]["ended_at"]))
    assert all(len(stage_spans) == 1 for stage_spans in by_stage.values()), by_stage
    assert by_stage["e2e"] and {key for key, s in data["sections"].items() if s["extra"]["run"]["stage"] == "e2e"} == {
        "e2e",
        "e2e-stream",
    }
    spans = sorted(span for stage_spans in by_stage.values() for span in stage_spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans
    assert len({s["extra"]["run"]["run_id"] for s in data["sections"].values()}) == 1


def test_results_md_has_a_table_per_section_with_machine_and_date(
    smoke_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out_dir = smoke_run
    data = json.loads((out_dir / "results.json").read_text())
    md = (out_dir / "RESULTS.md").read_text()
    assert md == report.render(data)
    assert "## Overview" in md and "### Against the hardware's floor" in md
    for key, section in data["sections"].items():
        start = md.index(f"## {section['title']}\n")
        nxt = md.find("\n## ", start + 1)
        body = md[start : nxt if nxt > 0 else len(md)]
        stamp = body.splitlines()[2]
        assert section["date"] in stamp and section["machine"]["cpu"] in stamp, (key, stamp)
        assert f"({section['machine']['cores']} cores" in stamp, (key, stamp)
        assert "| metric | podbrief | peer | peer figure | peer figure is | ratio | better | unit | note |" in body, key
        assert body.splitlines()[4].startswith("Measured " + section["extra"]["run"]["load"]["started_at"]), key
        rows = [line for line in body.splitlines() if line.startswith("| ") and "|---" not in line]
        assert len(rows) >= 1 + len(section["comparisons"]), key


def test_capacity_model_rendered_from_these_results(smoke_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out_dir = smoke_run
    text = (out_dir / "CAPACITY.md").read_text()
    assert text.startswith("#") and "results.json" in text
