"""Extraction quality on real podcast transcripts, per model, written by the tool (never typed by hand).

    make eval-extraction                              # held-out set: the default model and SmolLM2 side by side
    make eval-extraction BASE_URL=http://vllm:8000/v1 MODEL=Qwen/Qwen2.5-7B-Instruct   # any OpenAI endpoint
    python -m podbrief_extraction.eval.run --set dev --max-minutes 20               # quick development runs
    python -m podbrief_extraction.eval.run --set synthetic                          # the old synthetic smoke set
    python -m podbrief_extraction.eval.run --rescore services/extraction/eval/results/<file>.json

Per model it reports, on the labelled Changelog episodes of the chosen split (see LABELLING.md):
- recall: labelled key insights found (an insight's quote overlaps one of the label's evidence spans);
- labels proposed: labels that some candidate matched, kept or not (recall before the gates, the ranking and
  the episode's cap: where a lost label was lost);
- ranking AUC: how well the episode-level ranking puts the candidates that match a label above those that match
  none (0.5 is chance, 1.0 every labelled one first), averaged over episodes: the ranking judged apart from how
  many candidates there were and how many the cap keeps;
- precision: kept insights that match a label, or that the reviewer list (reviewed.json) marks specific and
  true; unreviewed ones count as wrong;
- grounded: kept insights whose quote is verbatim in the transcript (must be 1.0);
- synthesized: kept insights whose text is a synthesis: not the quote or a piece of it, and not a copy of it
  behind an attribution ("Ana Ruiz says" and twelve or more of the quote's words in a row);
- third person: kept insights whose text reports in the brief's voice, not the speaker's own words in the first
  person outside quotation marks ("Ana Ruiz says we cut bills by 45%");
- sponsor: kept insights quoted from the sponsor reads the evaluation puts where ad breaks were cut;
- CPU seconds per audio hour (the embedded llama-server's CPU plus this process's; a remote endpoint's CPU is
  not visible, so its row says so), and tokens in and out, per audio hour and per stage.

Results go to services/extraction/eval/results/ (JSON and Markdown, with model, date, machine and load), and
the held-out table into services/extraction/README.md's generated section `eval-heldout` (podbrief.generated, as
every tool that publishes figures)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podbrief import host
from podbrief.clock import utcnow
from podbrief.events.ids import NAMESPACE
from podbrief.generated import write_section
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.eval import corpus
from podbrief_extraction.eval.corpus import Episode
from podbrief_extraction.extractor import ExtractionResult, Extractor
from podbrief_extraction.grounding import copied, norm_tokens
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import ExtractionSettings

EVAL_DIR = Path(__file__).parent
# The old synthetic set (eight hand-labelled chunks): a smoke test of the whole path, and the extraction bench's input.
DATASET = EVAL_DIR / "synthetic.json"
RESULTS_DIR = EVAL_DIR / "results"
REVIEWED = EVAL_DIR / "reviewed.json"
README = EVAL_DIR.parent / "README.md"
README_SECTION = "eval-heldout"
README_SOURCE = "`make eval-extraction` (services/extraction/eval/run.py)"
# The trial of the default model on a quiet 2-core machine (2 threads): tokens per second.
TRIAL_PROMPT_RATE, TRIAL_GEN_RATE = 68.0, 23.0


@dataclass
class ModelSpec:
    label: str
    preset: str | None = None  # an embedded preset, or None for an endpoint
    base_url: str | None = None
    model: str | None = None


@dataclass
class Meter:
    """CPU seconds of this process and of the embedded server, wall seconds."""

    server_pid: int | None
    wall: float = 0.0
    cpu_self: float = 0.0
    cpu_server: float = 0.0

    def _server(self) -> float:
        if self.server_pid is None:
            return 0.0
        import psutil

        t = psutil.Process(self.server_pid).cpu_times()
        return float(t.user + t.system)

    def __enter__(self) -> Meter:
        r = resource.getrusage(resource.RUSAGE_SELF)
        self._s0, self._p0, self._w0 = r.ru_utime + r.ru_stime, self._server(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_self = r.ru_utime + r.ru_stime - self._s0
        self.cpu_server = self._server() - self._p0
        self.wall = time.perf_counter() - self._w0


@dataclass
class EpisodeScore:
    file: str
    audio_s: float
    wall_s: float
    cpu_s: float
    cpu_server_s: float
    tokens_in: int
    tokens_out: int
    tokens_cached: int
    stages: dict[str, dict[str, int]]
    labels: int
    found: list[str]
    insights: list[dict[str, Any]]
    dropped: dict[str, int]
    verdicts: dict[str, int]
    candidates: int
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # Labels that some candidate's quote matched, kept or not: where recall is lost, in picking (a label no
    # candidate matched) or after it (in the gates, the ranking or the episode's cap).
    # None in results saved before it was recorded.
    proposed: list[str] | None = None
    # When this episode ran, and the machine's load average (1, 5, 15 min) just before: slices of one
    # evaluation run at different times.
    finished_at: str = ""
    load_before: list[float] = field(default_factory=list)


def is_synthesis(text: str, quote: str) -> bool:
    """A text is a synthesis unless it is the quote, or a piece of it, nearly word for word, or copies it: twelve
    or more of the quote's words in a row, as in "Ana Ruiz says" and then the quote's own sentence (the writer's
    `copied` rule)."""
    t, q = norm_tokens(text), norm_tokens(quote)
    if not t:
        return False
    if " ".join(t) in " ".join(q) or copied(text, quote):
        return False
    shared = len(set(t) & set(q)) / len(set(t) | set(q))
    return shared < 0.9


# What a quotation looks like inside a written text: double quotes, or single quotes that open before a word and
# close after one (so the apostrophes of "it's" and "Docker's" are not taken for quotation marks).
_QUOTED = re.compile(r"[\"“][^\"”]*[\"”]|(?<![\w'’])['‘](?=\w).*?(?<=[\w.,!?…])['’](?![\w'’])")
_FIRST_PERSON = re.compile(
    r"(?<![\w'’])(?:(?i:me|my|mine|myself|we|our|ours|ourselves|let['’]s|we['’](?:re|ve|d|ll))"
    r"|I|I['’](?:m|ve|d|ll)|us)(?![\w'’/-])"
)


def first_person(text: str) -> bool:
    """Whether a text reports its speaker's words in the first person outside quotation marks ("Jeff Smith says
    we are a purpose-built company and our true North ..."): the speaker's own sentence behind an attribution,
    where the brief's voice is the third person ("... says Chrp is a purpose-built company"). "US" the country,
    "I/O", and a first person inside a quotation ('... says, "we ship weekly"'), are not."""
    return _FIRST_PERSON.search(_QUOTED.sub(" ", text)) is not None


def label_matches(ep: Episode, located: corpus.Span | None) -> list[str]:
    """The labels whose evidence overlaps the transcript span `located`."""
    if located is None:
        return []
    return [lab.id for lab in ep.labels if any(corpus.overlaps(located, s) for s in lab.spans)]


# Candidates that never reached the episode's ranking: set aside as promotional, merged into another as its
# duplicate, or not weighed at all.
UNRANKED = frozenset({"promotional", "duplicate", "invalid_output"})


def ranking_auc(decisions: Sequence[dict[str, Any]]) -> float | None:
    """The probability that a ranked candidate matching a label scored above one matching none (ties count
    half). None when the episode has no candidate of one kind, or when its decisions were saved without their
    labels."""
    ranked = [d for d in decisions if d["outcome"] not in UNRANKED]
    if any("labels" not in d for d in ranked):
        return None
    pos: list[float] = [d["score"] for d in ranked if d["labels"]]
    neg: list[float] = [d["score"] for d in ranked if not d["labels"]]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def with_labels(ep: Episode, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each decision with the labels its quote matches (a result saved before they were recorded gains them)."""
    for d in decisions:
        if "labels" not in d:
            d["labels"] = label_matches(ep, ep.locate(d["quote"]))
    return decisions


def reader_agreement(episodes: Sequence[Episode]) -> dict[str, Any] | None:
    """The second reader's points scored as if they were an extraction's kept insights, one quote each: the
    labels they find (recall) and the points that match a label (precision, with no reviewer list). What two
    careful readers agree on is the most a ranking of the same episodes can be asked to reach."""
    read = [e for e in episodes if e.reader]
    if not read:
        return None
    matches = [[label_matches(e, span) for span in e.reader] for e in read]
    found = sum(len({lab for point in episode for lab in point}) for episode in matches)
    labels = sum(len(e.labels) for e in read)
    points = sum(len(e.reader) for e in read)
    matching = sum(1 for episode in matches for point in episode if point)
    return {
        "episodes": len(read),
        "labels": labels,
        "found": found,
        "recall": round(found / labels, 3) if labels else None,
        "points": points,
        "matching": matching,
        "precision": round(matching / points, 3) if points else None,
    }


def score_episode(ep: Episode, result: ExtractionResult, meter: Meter, reviewed: dict[str, Any]) -> EpisodeScore:
    found: set[str] = set()
    rows: list[dict[str, Any]] = []
    decisions = with_labels(ep, [dict(d.__dict__) for d in result.decisions])
    proposed = {lab for d in decisions for lab in d["labels"]}
    for ins in result.insights:
        span = ep.index.find(norm_tokens(ins.quote))
        located = span or ep.locate(ins.quote)
        matches = label_matches(ep, located)
        found.update(matches)
        sponsor = bool(located and any(corpus.overlaps(located, a) for a in ep.ads))
        review = reviewed.get(review_key(ep.file, ins.quote, ins.text))
        rows.append(
            {
                "text": ins.text,
                "quote": ins.quote,
                "start_s": ins.start_s,
                "speaker": ins.speaker,
                "importance": ins.importance,
                "topics": list(ins.topics),
                "labels": matches,
                "grounded": span is not None,
                "synthesized": is_synthesis(ins.text, ins.quote),
                "third_person": not first_person(ins.text),
                "sponsor": sponsor,
                "review": review["verdict"] if review else None,
            }
        )
    return EpisodeScore(
        file=ep.file,
        audio_s=ep.transcript.duration_s,
        wall_s=round(meter.wall, 1),
        cpu_s=round(meter.cpu_self + meter.cpu_server, 1),
        cpu_server_s=round(meter.cpu_server, 1),
        tokens_in=result.usage.prompt_tokens,
        tokens_out=result.usage.completion_tokens,
        tokens_cached=result.usage.cached_tokens,
        stages={
            k: {
                "in": u.prompt_tokens,
                "out": u.completion_tokens,
                "cached": u.cached_tokens,
                "calls": u.requests,
                "prompt_ms": round(u.prompt_ms),
                "generation_ms": round(u.generation_ms),
            }
            for k, u in result.stages.items()
        },
        labels=len(ep.labels),
        found=sorted(found),
        insights=rows,
        dropped={str(k): v for k, v in result.dropped.items()},
        verdicts=dict(result.verdicts),
        candidates=result.candidates,
        decisions=decisions,
        proposed=sorted(proposed | found),
    )


def review_key(file: str, quote: str, text: str) -> str:
    return " | ".join((file, " ".join(norm_tokens(quote))[:200], " ".join(norm_tokens(text))))


def load_reviewed() -> dict[str, Any]:
    if not REVIEWED.is_file():
        return {}
    data = json.loads(REVIEWED.read_text(encoding="utf-8"))
    return {review_key(r["file"], r["quote"], r["text"]): r for r in data.get("reviews", [])}


def summarise(scores: list[EpisodeScore], remote: bool) -> dict[str, Any]:
    kept = [i for s in scores for i in s.insights]
    audio_h = sum(s.audio_s for s in scores) / 3600 or 1e-9
    labels = sum(s.labels for s in scores)
    found = sum(len(s.found) for s in scores)
    correct = sum(1 for i in kept if i["labels"] or i["review"] == "specific_true")
    unreviewed = sum(1 for i in kept if not i["labels"] and i["review"] is None)
    stages: dict[str, Counter[str]] = {}
    for s in scores:
        for k, v in s.stages.items():
            stages.setdefault(k, Counter()).update(v)
    tin = sum(s.tokens_in - s.tokens_cached for s in scores)
    tout = sum(s.tokens_out for s in scores)
    prompt_s = sum(st.get("prompt_ms", 0) for st in stages.values()) / 1000
    gen_s = sum(st.get("generation_ms", 0) for st in stages.values()) / 1000
    aucs = [a for a in (ranking_auc(s.decisions) for s in scores) if a is not None]
    return {
        "episodes": len(scores),
        "audio_hours": round(audio_h, 3),
        "labels": labels,
        "found": found,
        "recall": round(found / labels, 3) if labels else None,
        # Labels that some candidate matched (recall before the gates, the ranking and the cap).
        "proposed": None if any(s.proposed is None for s in scores) else sum(len(s.proposed or ()) for s in scores),
        "ranking_auc": round(sum(aucs) / len(aucs), 3) if aucs else None,
        "kept": len(kept),
        "correct": correct,
        "unreviewed": unreviewed,
        "precision": round(correct / len(kept), 3) if kept else None,
        "grounded": round(sum(i["grounded"] for i in kept) / len(kept), 3) if kept else None,
        "synthesized": round(sum(i["synthesized"] for i in kept) / len(kept), 3) if kept else None,
        "third_person": round(sum(i["third_person"] for i in kept) / len(kept), 3) if kept else None,
        "sponsor_insights": sum(i["sponsor"] for i in kept),
        "cpu_s_per_audio_hour": None if remote else round(sum(s.cpu_s for s in scores) / audio_h, 1),
        "wall_s_per_audio_hour": round(sum(s.wall_s for s in scores) / audio_h, 1),
        "tokens_in": sum(s.tokens_in for s in scores),
        "tokens_out": sum(s.tokens_out for s in scores),
        "tokens_cached": sum(s.tokens_cached for s in scores),
        "tokens_in_per_audio_hour": round(sum(s.tokens_in for s in scores) / audio_h),
        "tokens_out_per_audio_hour": round(sum(s.tokens_out for s in scores) / audio_h),
        "stages": {k: dict(v) for k, v in stages.items()},
        # The server's own rates over the run (llama-server timings): what this machine did.
        "prompt_tokens_per_s": round(tin / prompt_s, 1) if prompt_s else None,
        "generation_tokens_per_s": round(tout / gen_s, 1) if gen_s else None,
        # The same tokens at the rates the trial measured on a quiet 2-core machine (68 prompt and 23
        # generated tokens/s, 2 threads): a projection, for comparing runs across machines.
        "cpu_min_per_audio_hour_at_trial_rates": round(
            2 * (tin / TRIAL_PROMPT_RATE + tout / TRIAL_GEN_RATE) / 60 / audio_h, 1
        ),
    }


def settings_for(spec: ModelSpec) -> ExtractionSettings:
    if spec.preset is not None:
        return ExtractionSettings(model_preset=spec.preset)  # type: ignore[arg-type]
    s = ExtractionSettings()
    updates = {k: v for k, v in (("base_url", spec.base_url), ("model", spec.model)) if v}
    return s.model_copy(update={"llm": s.llm.model_copy(update=updates)})


def fingerprint(settings: ExtractionSettings, max_minutes: float | None) -> str:
    """What an episode's cached result depends on: the model, the prompts and every extraction setting."""
    from podbrief_extraction.prompts import PROMPT_DIR

    h = hashlib.sha256()
    h.update(settings.model_dump_json(include={"llm", "chunking", "quality", "prompt_version"}).encode())
    h.update(repr(max_minutes).encode())
    for f in sorted(PROMPT_DIR.glob(f"insights_{settings.prompt_version}.*")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def cached_score(path: Path, key: str, ep: Episode, reviewed: dict[str, Any]) -> EpisodeScore | None:
    """An episode's saved result when it was made with the same model, prompts and settings; reviews re-applied."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("fingerprint") != key or data.get("labels") != len(ep.labels):
        return None
    data.pop("fingerprint")
    with_labels(ep, data["decisions"])
    for ins in data["insights"]:
        r = reviewed.get(review_key(ep.file, ins["quote"], ins["text"]))
        ins["review"] = r["verdict"] if r else None
    return EpisodeScore(**data)


async def run_model(
    spec: ModelSpec,
    episodes: list[Episode],
    reviewed: dict[str, Any],
    verbose: bool,
    cache_dir: Path | None = None,
    max_minutes: float | None = None,
    saved_only: bool = False,
    fresh: bool = False,
) -> dict[str, Any]:
    """One model over the episodes. With `cache_dir`, each episode's result is saved as it finishes and reused
    by the next run with the same model, prompts and settings: a long evaluation runs in slices (one episode per
    call, `--episodes`), and the last call assembles the table from the saved results. `fresh` runs every
    episode again and saves what it ran over the saved result (the key does not cover the code, so a result
    saved by older code with the same settings must not outlive a fresh run)."""
    settings = settings_for(spec)
    key = fingerprint(settings, max_minutes)
    scores: list[EpisodeScore] = []
    todo: list[tuple[Episode, Path | None]] = []
    for ep in episodes:
        path = cache_dir / spec.label.replace("/", "_") / f"{Path(ep.file).stem}.json" if cache_dir else None
        saved = cached_score(path, key, ep, reviewed) if path and not fresh else None
        if saved is not None:
            if verbose:
                sys.stderr.write(f"  {spec.label} {ep.file}: saved result ({path})\n")
            scores.append(saved)
        elif not saved_only:
            todo.append((ep, path))
        elif verbose:
            sys.stderr.write(f"  {spec.label} {ep.file}: no saved result, left out\n")
    server: EmbeddedLlamaServer | None = None
    base_url = settings.llm.base_url
    try:
        if todo and base_url is None:
            server = EmbeddedLlamaServer(settings.llama)
            await server.start()
            base_url = server.base_url
        if todo:
            async with LLMClient(settings.llm, base_url=base_url, pin_prefix=server is not None) as llm:
                extractor = Extractor(llm, settings)
                for ep, path in todo:
                    score = await _run_episode(spec, extractor, server, ep, reviewed, verbose)
                    scores.append(score)
                    if path is not None:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(
                            json.dumps({"fingerprint": key, **score.__dict__}, indent=1, ensure_ascii=False),
                            encoding="utf-8",
                        )
    finally:
        if server is not None:
            await server.aclose()
    order = {ep.file: n for n, ep in enumerate(episodes)}
    scores.sort(key=lambda s: order[s.file])
    return {
        "label": spec.label,
        "model": settings.llm.model,
        "preset": spec.preset,
        "endpoint": spec.base_url or "embedded llama-server",
        "threads": settings.llama.thread_count if spec.base_url is None else None,
        "prompt_version": f"insights_{settings.prompt_version}",
        "fingerprint": key,
        "summary": summarise(scores, remote=spec.base_url is not None),
        "episodes": [s.__dict__ for s in scores],
    }


async def _run_episode(
    spec: ModelSpec,
    extractor: Extractor,
    server: EmbeddedLlamaServer | None,
    ep: Episode,
    reviewed: dict[str, Any],
    verbose: bool,
) -> EpisodeScore:
    pid = server._proc.pid if server is not None and server._proc is not None else None
    load = [round(x, 2) for x in os.getloadavg()]
    with Meter(pid) as meter:

        def progress(done: int, total: int | None) -> None:
            if verbose:
                sys.stderr.write(f"\r  {spec.label} {ep.file}: {done}/{total} calls ")
                sys.stderr.flush()

        result = await extractor.extract(
            ep.transcript,
            episode_id=uuid.uuid5(NAMESPACE, "eval:" + ep.file),
            show=ep.show,
            title=ep.title,
            people=ep.people,
            progress=progress,
        )
    score = score_episode(ep, result, meter, reviewed)
    score.finished_at, score.load_before = utcnow().isoformat(timespec="seconds"), load
    if verbose:
        sys.stderr.write(
            f"\r  {spec.label} {ep.file}: {len(score.found)}/{score.labels} labels, "
            f"{len(score.insights)} kept, {score.wall_s:.0f}s wall, {score.cpu_s:.0f} CPU-s\n"
        )
    return score


def rescore(report: dict[str, Any]) -> dict[str, Any]:
    """Recompute the figures of a saved report with the current reviewer list, second reader and definition of a
    synthesis (no model is run)."""
    reviewed = load_reviewed()
    files = {ep["file"] for m in report["models"] for ep in m["episodes"]}
    split = None if report["set"] == "all" else report["set"]
    episodes = corpus.load(split, max_minutes=report.get("max_minutes"), only=files)
    by_file = {e.file: e for e in episodes}
    for m in report["models"]:
        for ep in m["episodes"]:
            with_labels(by_file[ep["file"]], ep["decisions"])
            for ins in ep["insights"]:
                r = reviewed.get(review_key(ep["file"], ins["quote"], ins["text"]))
                ins["review"] = r["verdict"] if r else None
                ins["synthesized"] = is_synthesis(ins["text"], ins["quote"])
                ins["third_person"] = not first_person(ins["text"])
        scores = [EpisodeScore(**{k: v for k, v in ep.items()}) for ep in m["episodes"]]
        m["summary"] = summarise(scores, remote=m["endpoint"] != "embedded llama-server")
    report["reader"] = reader_agreement(episodes)
    report["rescored_at"] = utcnow().isoformat(timespec="seconds")
    return report


TABLE_HEAD = (
    "| model | recall | labels proposed | ranking AUC | precision | grounded | synthesized | third person | "
    "sponsor-read insights | CPU s / audio h | tokens in / out per audio h | wall s / audio h | "
    "server tok/s prompt / gen | CPU min / audio h at the trial's rates |\n" + "|---" * 14 + "|\n"
)


def table(report: dict[str, Any]) -> str:
    rows = []
    for m in report["models"]:
        s = m["summary"]
        cpu = "n/a (remote)" if s["cpu_s_per_audio_hour"] is None else f"{s['cpu_s_per_audio_hour']:.0f}"
        proposed = "n/a" if s.get("proposed") is None else s["proposed"]
        auc = "n/a" if s.get("ranking_auc") is None else s["ranking_auc"]
        rows.append(
            f"| {m['model']} ({m['endpoint'] if m['preset'] is None else 'preset ' + m['preset']}) "
            f"| {s['recall']} ({s['found']}/{s['labels']}) | {proposed} | {auc} "
            f"| {s['precision']} ({s['correct']}/{s['kept']}) "
            f"| {s['grounded']} | {s['synthesized']} | {s.get('third_person', '–')} | {s['sponsor_insights']} | {cpu} "
            f"| {s['tokens_in_per_audio_hour']:,} / {s['tokens_out_per_audio_hour']:,} "
            f"| {s['wall_s_per_audio_hour']:.0f} | {s['prompt_tokens_per_s']} / {s['generation_tokens_per_s']} "
            f"| {s['cpu_min_per_audio_hour_at_trial_rates']} |"
        )
    reader = report.get("reader")
    if reader:
        rows.append(
            f"| a second reader, by hand ({reader['points']} points, one quote each) "
            f"| {reader['recall']} ({reader['found']}/{reader['labels']}) | – | – "
            f"| {reader['precision']} ({reader['matching']}/{reader['points']}; labels only) | "
            + " | ".join(["–"] * 9)
            + " |"
        )
    return TABLE_HEAD + "\n".join(rows) + "\n"


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Extraction evaluation: {report['set']} set, {report['date']}",
        "",
        f"{scope(report)}; machine: {m['cpu']}, {m['cores']} "
        f"cores; load average before {report['load_before']}, after {report['load_after']}. "
        f"Written by `python -m podbrief_extraction.eval.run`.",
        "",
        table(report),
    ]
    for model in report["models"]:
        s = model["summary"]
        lines += [
            f"## {model['model']}",
            "",
            "Stages (tokens in/out, calls): "
            + ", ".join(
                f"{k} {v.get('in', 0):,}/{v.get('out', 0):,} ({v.get('calls', 0)} calls, {v.get('cached', 0):,} cached)"
                for k, v in s["stages"].items()
            ),
            f"Unreviewed kept insights that match no label: {s['unreviewed']} (counted as wrong).",
            "",
        ]
        for ep in model["episodes"]:
            lines.append(
                f"### {ep['file']}: {len(ep['found'])}/{ep['labels']} labels"
                + (f" ({len(ep['proposed'])} proposed)" if ep.get("proposed") is not None else "")
                + (f", ranking AUC {auc:.2f}" if (auc := ranking_auc(ep["decisions"])) is not None else "")
                + ", "
                f"{len(ep['insights'])} kept, "
                f"{ep['wall_s']:.0f} s wall, {ep['cpu_s']:.0f} CPU-s"
                + (
                    f" (ran {ep['finished_at']}, load average before {ep['load_before']})"
                    if ep.get("finished_at")
                    else ""
                )
            )
            lines.append("")
            for ins in ep["insights"]:
                tag = ",".join(ins["labels"]) or (ins["review"] or "unreviewed")
                flags = (
                    ("" if ins["synthesized"] else " [quote as text]")
                    + ("" if ins.get("third_person", True) else " [first person]")
                    + (" [SPONSOR]" if ins["sponsor"] else "")
                )
                lines.append(f"- [{tag}]{flags} {ins['text']}  \n  > {ins['quote'][:300]}")
            lines.append("")
    return "\n".join(lines)


def scope(report: dict[str, Any]) -> str:
    """What the figures cover: the episodes, how much of each, and any a model has no result for."""
    text = f"{report['episodes']} episodes, {report['audio_hours']:.2f} audio hours"
    if report.get("max_minutes"):
        text += f": the first {report['max_minutes']:g} minutes of each"
    missing = {k: v for k, v in (report.get("missing") or {}).items() if v}
    for label, files in missing.items():
        text += f"; {label} has no result for {', '.join(files)}"
    return text


def update_readme(report: dict[str, Any]) -> None:
    if not README.is_file():  # an installed package, not a source checkout
        return
    m = report["machine"]
    body = (
        f"Held-out set ({scope(report)}), {report['date']}, "
        f"{m['cpu']} ({m['cores']} cores), load average {report['load_before']} before the run "
        f"([full results]({report['results_md']})):\n\n{table(report)}"
    )
    write_section(README, README_SECTION, body, source=README_SOURCE)


async def synthetic(settings_spec: ModelSpec) -> None:
    """The old eight synthetic chunks, kept as a smoke test of the whole path on any model."""
    data = json.loads(DATASET.read_text())
    from podbrief.events import Segment, Transcript

    settings = settings_for(settings_spec)
    server = None if settings.llm.base_url else await EmbeddedLlamaServer(settings.llama).start()
    url = settings.llm.base_url or (server.base_url if server else "")
    try:
        async with LLMClient(settings.llm, base_url=url, pin_prefix=server is not None) as llm:
            ex = Extractor(llm, settings)
            for item in data["items"]:
                segs = tuple(Segment.model_validate(s) for s in item["segments"])
                t = Transcript(
                    text=" ".join(s.text for s in segs), language="en", duration_s=segs[-1].end_s, segments=segs
                )
                r = await ex.extract(
                    t, episode_id=uuid.uuid5(NAMESPACE, item["id"]), show=item["show"], title=item["title"]
                )
                expected = [e["quote"] for e in item["expected"]]
                hit = sum(
                    1 for e in expected if any(set(norm_tokens(e)) & set(norm_tokens(i.quote)) for i in r.insights)
                )
                sys.stdout.write(f"{item['id']:<20} kept {len(r.insights)} expected {hit}/{len(expected)}\n")
                for i in r.insights:
                    sys.stdout.write(f"    - {i.text}\n")
    finally:
        if server is not None:
            await server.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="split", choices=("heldout", "dev", "all", "synthetic"), default="heldout")
    parser.add_argument("--models", default="qwen1.5b,tiny", help="embedded presets to compare (comma-separated)")
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL") or None, help="an OpenAI-compatible endpoint")
    parser.add_argument("--model", default=os.environ.get("MODEL") or None, help="the model name at --base-url")
    parser.add_argument(
        "--episodes",
        help="only these episode files (comma-separated stems): a slice, saved for the full run to assemble",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="run every episode again (and save its result over the saved one)"
    )
    parser.add_argument(
        "--saved-only",
        action="store_true",
        help="make the table from the saved episode results only (no model runs; the report names what is missing)",
    )
    parser.add_argument("--max-minutes", type=float, help="only the first minutes of each episode (development)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--rescore", type=Path, help="recompute a saved report with the current reviewer list")
    parser.add_argument("--no-readme", action="store_true", help="do not update the README table")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()

    specs = (
        [ModelSpec(args.model or "endpoint", base_url=args.base_url, model=args.model)]
        if args.base_url
        else [ModelSpec(p, preset=p) for p in args.models.split(",") if p]
    )
    if args.split == "synthetic":
        for spec in specs:
            asyncio.run(synthetic(spec))
        return
    if args.rescore:
        report = rescore(json.loads(args.rescore.read_text()))
        args.rescore.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        args.rescore.with_suffix(".md").write_text(markdown(report))
    else:
        only = set(args.episodes.split(",")) if args.episodes else None
        episodes = corpus.load(None if args.split == "all" else args.split, max_minutes=args.max_minutes, only=only)
        if not episodes:
            parser.error("no episodes selected")
        reviewed = load_reviewed()
        load_before = [round(x, 2) for x in os.getloadavg()]
        cache = args.out_dir / "episodes"
        models = [
            asyncio.run(
                run_model(
                    spec, episodes, reviewed, not args.quiet, cache, args.max_minutes, args.saved_only, args.fresh
                )
            )
            for spec in specs
        ]
        if only:
            # A slice: its episodes' results are saved; the table is made by a run over the whole split.
            for m in models:
                s = m["summary"]
                sys.stdout.write(
                    f"{m['label']}: {s['found']}/{s['labels']} labels, {s['kept']} kept, "
                    f"{s['sponsor_insights']} from sponsor reads, {s['cpu_s_per_audio_hour']} CPU s / audio h\n"
                )
            sys.stdout.write(f"saved under {cache}; run without --episodes for the table\n")
            return
        date = utcnow()
        ran = {x["file"] for m in models for x in m["episodes"]}
        covered = [e for e in episodes if e.file in ran]
        stem = f"{date:%Y-%m-%d}-{args.split}" + (f"-{int(args.max_minutes)}min" if args.max_minutes else "")
        stem += "-" + "-".join(s.label.replace("/", "_") for s in specs)
        report = {
            "set": args.split,
            "date": date.isoformat(timespec="seconds"),
            "machine": host.describe(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "episodes": len(covered),
            "audio_hours": round(sum(e.transcript.duration_s for e in covered) / 3600, 3),
            # Episodes of the split that a model has no result for (--saved-only): its figures leave them out.
            "missing": {
                m["label"]: sorted({e.file for e in episodes} - {x["file"] for x in m["episodes"]}) for m in models
            },
            "max_minutes": args.max_minutes,
            "models": models,
            "reader": reader_agreement(covered),
        }
        args.out_dir.mkdir(parents=True, exist_ok=True)
        json_path = args.out_dir / f"{stem}.json"
        report["results_md"] = f"eval/results/{stem}.md"
        json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        json_path.with_suffix(".md").write_text(markdown(report))
        args.rescore = json_path
    sys.stdout.write(table(report))
    sys.stdout.write(f"results: {args.rescore} and {args.rescore.with_suffix('.md')}\n")
    if report["set"] == "heldout" and not args.no_readme:
        update_readme(report)


if __name__ == "__main__":
    main()
