"""Figures in the READMEs are written by the tools that measured them (podbrief.generated): the section markers
work as documented, and no generated section of a tracked document was edited by hand since its tool wrote it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from podbrief.generated import GeneratedSectionError, replace_section, sections

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = "intro\n<!-- generated:figures -->\n<!-- /generated:figures -->\noutro\n"


def test_a_section_is_filled_then_replaced_and_read_back() -> None:
    once = replace_section(DOC, "figures", "| a | 1 |", source="`make x`")
    twice = replace_section(once, "figures", "| a | 2 |\n", source="`make x`")
    assert twice.startswith("intro\n") and twice.endswith("<!-- /generated:figures -->\noutro\n")
    [s] = sections(twice)
    assert (s.name, s.source, s.body, s.hand_edited) == ("figures", "`make x`", "| a | 2 |\n", False)
    assert replace_section(twice, "figures", "| a | 2 |", source="`make x`") == twice


def test_a_hand_edit_shows() -> None:
    text = replace_section(DOC, "figures", "| a | 1 |", source="`make x`").replace("| a | 1 |", "| a | 0.9 |")
    assert sections(text)[0].hand_edited


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("no markers\n", "no generated section 'figures'"),
        (DOC + DOC, "no generated section 'figures'"),
        ("<!-- generated:figures -->\n", "no generated section 'figures'"),
    ],
)
def test_missing_or_ambiguous_markers_are_refused(doc: str, message: str) -> None:
    with pytest.raises(GeneratedSectionError, match=message):
        replace_section(doc, "figures", "x", source="`make x`")


def test_names_and_sources_are_checked() -> None:
    with pytest.raises(GeneratedSectionError, match="invalid section name"):
        replace_section(DOC, "Figures!", "x", source="`make x`")
    with pytest.raises(GeneratedSectionError, match="invalid source"):
        replace_section(DOC, "figures", "x", source="a --> b")


def test_no_generated_section_of_a_tracked_document_was_edited_by_hand() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    seen = {}
    for name in tracked:
        for s in sections((ROOT / name).read_text(encoding="utf-8")):
            assert not s.hand_edited, f"{name}: generated section {s.name!r} was edited by hand; re-run {s.source}"
            assert (name, s.name) not in seen, f"{name}: section {s.name!r} twice"
            seen[(name, s.name)] = s.source
