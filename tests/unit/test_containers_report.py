"""`make test-containers` writes its last run into the README through the one mechanism for tool-written figures
(podbrief.generated): scripts/containers/report.py, from what the run recorded under test-artifacts/containers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from podbrief.generated import sections

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "containers" / "report.py"


def load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("containers_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pointed_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readme_text: str) -> tuple[ModuleType, Path, Path]:
    """The report script writing into tmp_path's README and record, reading tmp_path/artifacts (made empty)."""
    report = load_report()
    readme = tmp_path / "README.md"
    readme.write_text(readme_text)
    (tmp_path / "artifacts").mkdir()
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "RECORD", tmp_path / "test-containers.json")
    monkeypatch.setattr("sys.argv", ["report.py", "--artifacts", str(tmp_path / "artifacts")])
    return report, readme, tmp_path / "artifacts"


def test_the_run_is_written_into_the_readme_as_a_generated_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = "# x\n\n<!-- generated:test-containers -->\n<!-- /generated:test-containers -->\n\nafter\n"
    report, readme, artifacts = pointed_at(tmp_path, monkeypatch, doc)
    (artifacts / "phases.json").write_text(json.dumps({"rc": 0, "setup_s": 12.0, "total_s": 900.0}))
    (artifacts / "images.json").write_text(
        json.dumps({"podbrief:dev": {"stands_in_for": None, "size_bytes": 1.2e9, "seconds": 600.0, "user": "app"}})
    )
    (artifacts / "result.json").write_text(
        json.dumps(
            {"finished_at": "2026-12-05T03:00:00Z", "tests": {"test_smoke": {"outcome": "passed", "seconds": 5}}}
        )
    )

    assert report.main() == 0
    [s] = sections(readme.read_text())
    assert s.name == "test-containers" and not s.hand_edited and "make test-containers" in s.source
    assert "**passed** (1/1 tests" in s.body and "| `podbrief:dev` | project image | 1,200 |" in s.body
    assert readme.read_text().endswith("\nafter\n")
    assert report.main() == 0 and len(sections(readme.read_text())) == 1  # replaced, never added twice


def test_a_readme_without_the_section_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report, readme, _ = pointed_at(tmp_path, monkeypatch, "# no section here\n")
    assert report.main() == 1
    assert readme.read_text() == "# no section here\n"


def test_a_cached_build_shows_the_last_cold_build_of_the_same_recipe_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = "<!-- generated:test-containers -->\n<!-- /generated:test-containers -->\n"
    report, readme, artifacts = pointed_at(tmp_path, monkeypatch, doc)
    image = {"stands_in_for": None, "size_bytes": 1e9, "user": "app", "recipe": "r1", "steps": 30}
    record = {
        "a:1": {**image, "seconds": 900.0, "cached": False, "steps_cached": 0},
        "b:1": {**image, "seconds": 1800.0, "cached": False, "steps_cached": 0},
    }
    (artifacts / "images.json").write_text(json.dumps(record))
    assert report.main() == 0
    # The next run: both from the layer cache, but b's Dockerfile changed (another recipe) since its cold build.
    record = {
        "a:1": {**image, "seconds": 40.0, "cached": True, "steps_cached": 28},
        "b:1": {**image, "seconds": 60.0, "cached": True, "steps_cached": 20, "recipe": "r2"},
    }
    (artifacts / "images.json").write_text(json.dumps(record))
    assert report.main() == 0
    body = sections(readme.read_text())[0].body
    assert "| `a:1` | project image | 1,000 | 40 (28/30 steps from cache) | 900 | app |" in body
    assert "| `b:1` | project image | 1,000 | 60 (20/30 steps from cache) | – | app |" in body
