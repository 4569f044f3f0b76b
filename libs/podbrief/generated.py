"""Generated sections of Markdown documents: figures a tool measured, written into a README by that tool, never by
hand. A section sits between two HTML comments, invisible when rendered:

    <!-- generated:faults by `make test-faults` (sha1 0a1b2c3d4e5f) -->
    ...the body...
    <!-- /generated:faults -->

`write_section` replaces the body and records who wrote it and the body's hash; `sections` reads them back, so a
test can tell a hand edit (body and hash disagree) from the tool's output. The one mechanism for every tool that
publishes figures (the benchmarks, the fault suite, the extraction eval); it imports nothing of podbrief's."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

_START = re.compile(
    r"<!-- generated:(?P<name>[a-z0-9][a-z0-9_.-]*) by (?P<source>.+?) \(sha1 (?P<sha>[0-9a-f]{12})\) -->\n"
)
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


class GeneratedSectionError(ValueError):
    """A document lacks the markers of a section, has them twice or out of order, or a name is invalid."""


@dataclass(frozen=True)
class Section:
    name: str
    source: str
    sha1: str  # as recorded in the start marker
    body: str

    @property
    def hand_edited(self) -> bool:
        return digest(self.body) != self.sha1


def digest(body: str) -> str:
    return hashlib.sha1(body.encode("utf-8")).hexdigest()[:12]


def _end(name: str) -> str:
    return f"<!-- /generated:{name} -->"


def sections(text: str) -> list[Section]:
    """Every generated section of a document, in order; raises on an unterminated one."""
    found: list[Section] = []
    for m in _START.finditer(text):
        end = text.find(_end(m["name"]), m.end())
        if end < 0:
            raise GeneratedSectionError(f"generated section {m['name']!r} has no end marker {_end(m['name'])!r}")
        found.append(Section(m["name"], m["source"], m["sha"], text[m.end() : end]))
    return found


def render_section(name: str, body: str, *, source: str) -> str:
    """The markers and the body, as `write_section` puts them into a document (the body ends with a newline)."""
    if not _NAME.fullmatch(name):
        raise GeneratedSectionError(f"invalid section name {name!r} (lower-case letters, digits, '.', '_', '-')")
    if "-->" in source or "\n" in source:
        raise GeneratedSectionError(f"invalid source {source!r}: one line, no '-->'")
    body = body.rstrip("\n") + "\n"
    return f"<!-- generated:{name} by {source} (sha1 {digest(body)}) -->\n{body}{_end(name)}"


def replace_section(text: str, name: str, body: str, *, source: str) -> str:
    """`text` with section `name` replaced. The section must already be in the document exactly once: where a
    figure goes is the document's decision, made once by hand with an empty section; the tool only fills it."""
    if not _NAME.fullmatch(name):
        raise GeneratedSectionError(f"invalid section name {name!r} (lower-case letters, digits, '.', '_', '-')")
    matches = [m for m in _START.finditer(text) if m["name"] == name]
    if not matches:
        # Also accept a bare start marker without a hash, as a new, empty section is written by hand.
        bare = f"<!-- generated:{name} -->\n"
        if text.count(bare) == 1 and text.count(_end(name)) == 1 and text.index(bare) < text.index(_end(name)):
            start = text.index(bare)
            stop = text.index(_end(name)) + len(_end(name))
            return text[:start] + render_section(name, body, source=source) + text[stop:]
        raise GeneratedSectionError(
            f"no generated section {name!r}: add the two lines '<!-- generated:{name} -->' and "
            f"'{_end(name)}' where it belongs"
        )
    if len(matches) > 1:
        raise GeneratedSectionError(f"generated section {name!r} appears {len(matches)} times")
    m = matches[0]
    stop = text.find(_end(name), m.end())
    if stop < 0:
        raise GeneratedSectionError(f"generated section {name!r} has no end marker {_end(name)!r}")
    return text[: m.start()] + render_section(name, body, source=source) + text[stop + len(_end(name)) :]


def write_section(path: Path, name: str, body: str, *, source: str) -> None:
    """Replace section `name` of the document at `path` (see `replace_section`), atomically."""
    text = path.read_text(encoding="utf-8")
    new = replace_section(text, name, body, source=source)
    if new != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(path)
