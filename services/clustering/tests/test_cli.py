"""`podbrief cluster FILE.jsonl`: output formats, duplicates as line numbers, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from podbrief_clustering.cli import register
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def _other() -> None:  # a second command keeps typer from collapsing the app into `cluster`
        pass

    return app


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_output_one_object_per_line_in_order(
    tmp_path: Path, cli: typer.Typer, labelled: list[dict[str, Any]]
) -> None:
    rows = [r for r in labelled if r["topic"] in {"coffee", "space"}]
    src = _write(tmp_path / "in.jsonl", [{"text": r["text"], "show": r["show"], "topic": r["topic"]} for r in rows])
    result = CliRunner().invoke(cli, ["cluster", str(src), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["line"] for o in out] == list(range(1, len(rows) + 1))
    for o, r in zip(out, rows, strict=True):
        assert o["cluster_id"]
        if r["dup"] and any(x["dup"] == r["dup"] for x in rows[: o["line"] - 1]):
            first = next(i for i, x in enumerate(rows, start=1) if x["dup"] == r["dup"])
            assert o["duplicate_of"] == first
        else:
            assert o["duplicate_of"] is None
    by_topic: dict[str, set[str]] = {}
    for o, r in zip(out, rows, strict=True):
        by_topic.setdefault(r["topic"], set()).add(o["cluster_id"])
    assert not (by_topic["coffee"] & by_topic["space"])


def test_table_and_store(tmp_path: Path, cli: typer.Typer) -> None:
    src = _write(
        tmp_path / "in.jsonl",
        [
            {"text": "Arabica coffee prices hit a record after a drought in Brazil", "show": "A"},
            {"text": "A drought in Brazil sent arabica coffee prices to a record high", "show": "B"},
            {"text": "SpaceX caught the Starship booster with the tower arms"},
        ],
    )
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["cluster", str(src), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "clusters from 3 insights" in result.stdout and "coffee" in result.stdout
    assert (store / "qdrant").is_dir() and (store / "clustering.db").is_file()
    # The same file into the same store: an upsert, the same answer.
    first = CliRunner().invoke(cli, ["cluster", str(src), "--store", str(store), "--format", "jsonl"])
    second = CliRunner().invoke(cli, ["cluster", str(src), "--store", str(store), "--format", "jsonl"])
    assert first.stdout == second.stdout and json.loads(first.stdout.splitlines()[1])["duplicate_of"] == 1


def test_bad_lines_are_reported_with_their_numbers(tmp_path: Path, cli: typer.Typer) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "fine"}\nnot json\n\n{"show": "no text"}\n[1, 2]\n{"text": "x", "show": 3}\n')
    result = CliRunner().invoke(cli, ["cluster", str(src)])
    assert result.exit_code == 2
    err = result.stderr
    assert ":2: not valid JSON" in err and ':4: "text" must be a non-empty string' in err
    assert ":5: expected a JSON object" in err and ':6: "show" must be' in err and ":1:" not in err
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(cli, ["cluster", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
