"""The embedded default end to end: `podbrief run` (one process: the in-memory bus, SQLite, Qdrant local mode and
the CPU models) on a feed file whose only item is one benchmark episode, in a fresh data directory each time, as
a user runs it once their feed has a new episode. Nothing is warm: the clock runs from the command's start (the
feed update) to the brief composed, model loading included. The stage breakdown comes from the run's own
timeline (`run-timeline.json`, written by the runner)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from podbrief_run.layout import DataDir

from bench.e2e_audio import MIME, Episode
from bench.e2e_probe import TreeProbe
from bench.e2e_services import READERS, REPO, feed_xml, log
from bench.e2e_stages import AT_TRIAL, at_trial_rates, breakdown, minus

# The reader with no stated interests: every insight qualifies for their brief (one with interests may get a quiet
# day's note instead, when the episode's insights are off their topics, and the clock would never stop).
EMAIL, INTERESTS = READERS[0][0], READERS[0][1]
# The stages of one run, each from one timeline point to the next (`marks` of the runner, events on the bus).
STEPS = (
    ("startup", "start", "poll"),  # interpreter, imports, the five services (models loaded and warmed)
    ("ingest", "poll", "discovered"),  # the feed polled, the episode published
    ("transcription", "discovered", "transcribed"),
    ("extraction", "transcribed", "extracted"),
    ("clustering", "extracted", "clustered"),
    ("delivery", "clustered", "brief"),  # consumed, the pipeline seen idle, the brief composed and written
)


@dataclass
class EmbeddedRun:
    row: dict[str, Any]  # the per-run table row
    cpu_s: float
    peak_rss_mb: float
    ok: bool


def run_once(
    ep: Episode, base_url: str, work: Path, logs: Path, timeout_s: float, preset: str | None = None
) -> EmbeddedRun:
    data_dir = work / f"data-{ep.guid}"
    shutil.rmtree(data_dir, ignore_errors=True)
    feed = work / f"{ep.guid}.xml"
    feed.write_text(feed_xml(base_url, ep.show_slug, ep.show, [(ep, datetime.now(UTC))]))
    cmd = [sys.executable, "-m", "podbrief_cli", "run", "--feeds", str(feed), "--data-dir", str(data_dir)]
    cmd += ["--email", EMAIL, "--interests", INTERESTS, "--timeout", str(timeout_s)]
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"embedded-{ep.guid}.log").open("wb")
    log(f"podbrief run on {ep.guid} ({ep.duration_s:.0f} s of audio)")
    start = time.time()
    env = {**os.environ, **({"EXTRACTION_MODEL_PRESET": preset} if preset else {})}
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    probe = TreeProbe({"run": proc.pid}).start()
    cpu = 0.0
    try:
        while proc.poll() is None:
            cpu = probe.cpu_s("run")  # the tree's last reading before it exits (its children are gone after)
            if time.time() - start > timeout_s + 60:
                proc.kill()
                break
            time.sleep(0.5)
        ended = time.time()
    finally:
        probe.stop()
        out.close()
    if (data_dir / "podbrief.log").exists():
        shutil.copy(data_dir / "podbrief.log", logs / f"embedded-{ep.guid}.json.log")
    timeline_path = DataDir(data_dir).timeline
    ok = proc.returncode == 0 and timeline_path.exists()
    row: dict[str, Any] = {"episode": ep.guid, "audio_s": ep.duration_s, "clip": Path(ep.clip).name}
    if not ok:
        log(f"podbrief run exited {proc.returncode}; see {logs}")
        row.update(exit_code=proc.returncode)
        return EmbeddedRun(row, cpu, probe.peaks["run"].total_mb, False)
    timeline = json.loads(timeline_path.read_text())
    episodes = timeline["episodes"]
    (_eid, stages), *others = episodes.items()
    if others:
        raise RuntimeError(f"podbrief run saw {len(episodes)} episodes; the benchmark feed has one")
    points = {"start": start, **timeline["marks"], **stages}
    for name, a, b in STEPS:
        row[f"{name}_s"] = round(points[b] - points[a], 1) if a in points and b in points else None
    row["of which services start_s"] = round(timeline["marks"]["ready:delivery"] - timeline["started"], 1)
    metrics = timeline.get("metrics", {})
    used = minus(metrics.get("brief", {}), metrics.get("poll", {}))
    # The clock stops when a composed brief carries one of the episode's insights (a timeline without the count,
    # from an older runner, is taken as carrying it).
    carried = stages.get("in_brief")
    brief = points["brief"] if carried is None or carried > 0 else None
    fine = breakdown({**stages, "feed": points["poll"], "brief": brief}, used)
    row.update({f"{name} s": v for name, v in fine["stages_s"].items()})
    row.update(llm_requests=fine["llm_requests"], llm_tokens_in=fine["llm_tokens_in"])
    row["llm_tokens_out"] = fine["llm_tokens_out"]
    row.update(llm_prompt_tok_s=fine["llm_prompt_tok_s"], llm_generation_tok_s=fine["llm_generation_tok_s"])
    row["feed update to brief_s"] = None if brief is None else round(brief - start, 1)
    row["in_brief"] = carried
    # The estimate replaces every second the LLM server spent in the run, the system prompts it read at startup
    # included (the counters from the process's start, not from the poll).
    whole = breakdown({**stages, "feed": start, "brief": brief}, metrics.get("brief", {}))
    row[AT_TRIAL] = at_trial_rates(row["feed update to brief_s"], whole)
    row["insights"] = stages.get("insights")
    row["command_s"] = round(ended - start, 1)
    row["cpu_s"] = round(cpu, 1)
    row["peak_rss_mb"] = round(probe.peaks["run"].total_mb)
    shutil.rmtree(data_dir, ignore_errors=True)
    return EmbeddedRun(row, cpu, probe.peaks["run"].total_mb, True)


def run_all(
    episodes: list[Episode], work: Path, logs: Path, timeout_s: float, preset: str | None = None
) -> list[EmbeddedRun]:
    """Each episode in its own `podbrief run`, one after the other, its audio served from loopback."""
    from podbrief_testing import LoopbackServer

    work.mkdir(parents=True, exist_ok=True)
    server = LoopbackServer().start()
    try:
        for ep in episodes:
            server.add(f"/audio/{ep.path.name}", ep.path.read_bytes(), MIME)
        return [run_once(ep, server.base_url, work, logs, timeout_s, preset) for ep in episodes]
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
