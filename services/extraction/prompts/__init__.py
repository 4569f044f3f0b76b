"""Versioned prompt templates. A version is a set of file pairs, `insights_<version>.<stage>.system.j2` and
`insights_<version>.<stage>.user.j2`, one pair per stage (select, write, verify); the version is recorded on
every insight so a change of wording is traceable. System prompts take no variables: they are the stable
prefix that the server's prompt cache keeps between calls of a stage. A version may add
`insights_<version>.write.retry.j2`: the follow-up that asks the writer once more when its text named a topic
instead of stating a claim. A version may also add the `pick` stage pair: one call per chunk that both picks
the points and writes each insight (the select and write stages in one, for a slow CPU model), and the `rate`
stage pair: a yes/no question on one code-proposed passage, whose probability of yes ranks it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

PROMPT_DIR = Path(__file__).parent
STAGES = ("select", "write", "verify")


def available_versions() -> tuple[str, ...]:
    suffix = ".select.system.j2"
    return tuple(sorted(p.name[len("insights_") : -len(suffix)] for p in PROMPT_DIR.glob(f"insights_*{suffix}")))


@dataclass(frozen=True)
class StagePrompt:
    system: str
    user: jinja2.Template

    def render(self, **values: Any) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.render(**values).strip()},
        ]


@dataclass(frozen=True)
class PromptSet:
    version: str
    select: StagePrompt
    write: StagePrompt
    verify: StagePrompt
    write_retry: str | None = None
    pick: StagePrompt | None = None
    rate: StagePrompt | None = None

    @property
    def label(self) -> str:
        """What goes on each insight's `prompt_version`."""
        return f"insights_{self.version}"


@functools.cache
def load(version: str) -> PromptSet:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPT_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
    )
    stages: dict[str, StagePrompt] = {}
    try:
        for stage in STAGES:
            system = env.get_template(f"insights_{version}.{stage}.system.j2").render().strip()
            stages[stage] = StagePrompt(system, env.get_template(f"insights_{version}.{stage}.user.j2"))
    except jinja2.TemplateNotFound as exc:
        raise ValueError(f"prompt version {version!r} lacks {exc.name}") from exc
    retry = PROMPT_DIR / f"insights_{version}.write.retry.j2"
    write_retry = env.get_template(retry.name).render().strip() if retry.is_file() else None

    def optional(stage: str) -> StagePrompt | None:
        if not (PROMPT_DIR / f"insights_{version}.{stage}.system.j2").is_file():
            return None
        return StagePrompt(
            env.get_template(f"insights_{version}.{stage}.system.j2").render().strip(),
            env.get_template(f"insights_{version}.{stage}.user.j2"),
        )

    return PromptSet(version, **stages, write_retry=write_retry, pick=optional("pick"), rate=optional("rate"))
