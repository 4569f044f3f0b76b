"""Versioned prompt templates. Each version is a pair of files, `insights_<version>.system.j2` and
`insights_<version>.user.j2`; the version is recorded on every insight so a change of wording is traceable."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2

PROMPT_DIR = Path(__file__).parent


def available_versions() -> tuple[str, ...]:
    return tuple(sorted(p.name[len("insights_") : -len(".system.j2")] for p in PROMPT_DIR.glob("insights_*.system.j2")))


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: jinja2.Template
    user: jinja2.Template

    @property
    def label(self) -> str:
        """What goes on each insight's `prompt_version`."""
        return f"insights_{self.version}"

    def render(self, *, transcript: str, show: str, title: str, max_insights: int) -> list[dict[str, str]]:
        values = {"transcript": transcript, "show": show, "title": title, "max_insights": max_insights}
        return [
            {"role": "system", "content": self.system.render(**values).strip()},
            {"role": "user", "content": self.user.render(**values).strip()},
        ]


@functools.cache
def load(version: str) -> PromptTemplate:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPT_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    try:
        return PromptTemplate(
            version,
            env.get_template(f"insights_{version}.system.j2"),
            env.get_template(f"insights_{version}.user.j2"),
        )
    except jinja2.TemplateNotFound as exc:
        raise ValueError(f"no prompt template for version {version!r}") from exc
