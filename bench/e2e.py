"""End to end on CPU, from a feed update to the episode's first insight in a composed brief, in two parts:

A. alone (`--alone N`, section `e2e`): one 5-minute episode at a time, with the default extraction model (or
   `--preset`), so nothing queues:
   1. embedded: `podbrief run` (the embedded default), each episode in a fresh data directory with nothing warm
      but the per-user caches any run after a machine's first has (the llama-server build, the models, the
      system prompts' saved slot states) (bench/e2e_embedded.py);
   2. five services: the services as OS processes on real Kafka and PostgreSQL (bench/e2e_services.py), started
      and warmed before the clock, each episode released once the previous one is in a brief.
   Each episode's time is broken down per stage (bench/e2e_stages.py): poll; transcription's wait, download,
   transcription proper and the rest; extraction's wait, LLM requests and the rest; clustering; compose.
B. stream (`--stream N`, section `e2e-stream`): whether the pipeline has a batch barrier (issue #17 item 2: the
   tail of the latency against its median under a steady load). The five services again, with real Whisper,
   MiniLM, Qdrant Edge, Kafka and PostgreSQL, but extraction's LLM a scripted stand-in that answers at once
   (`--stream-llm scripted`; `--stream-llm model --stream-preset NAME` runs a real model), on shorter episodes
   (`--stream-minutes`, 1.5), so that enough episodes for a p95 fit one sitting on 2 cores (a CPU LLM takes
   minutes per episode): `--calibrate` episodes alone measure the handler seconds an episode needs, then N
   episodes are released one every `--interval` s into three feeds; by default the interval keeps the machine at
   80% of that capacity: below saturation, where the latency says how the pipeline schedules work rather than how
   long a backlog has grown. The section states the LLM and the episode length: it measures the scheduling, not
   the default model's speed (part A does).

    python -m bench.e2e [--alone 3] [--stream 20] [--minutes 5] [--preset NAME] [--no-embedded | --keep-embedded]
                        [--no-services] [--stream-minutes 1.5] [--stream-llm scripted|model] [--stream-preset NAME]
                        [--calibrate 2] [--interval S] [--smoke]

`--stream 0` runs part A only, `--alone 0` part B only. Part A splits in two sittings with `--no-services` (the
embedded runs only) then `--keep-embedded` (the services; the embedded runs kept from the `e2e` section the first
sitting wrote, saying so in the notes).

Reports the p50 of each alone set with its time per stage, the stream's p50, p95 and p95/p50 and episodes per
hour, CPU seconds per audio minute per service (model loading excluded, reported apart) and peak RSS per service
(children included: extraction's llama-server)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from bench.e2e_audio import Episode, build
from bench.e2e_embedded import EmbeddedRun
from bench.e2e_embedded import run_all as run_embedded
from bench.e2e_services import REPO, SERVICES, STAGES, Services, infrastructure, log
from bench.e2e_stages import AT_TRIAL, ROWS, at_trial_rates, breakdown

KEY, TITLE, ORDER = "e2e", "End to end: one episode alone, feed update to brief", 5
STREAM_KEY, STREAM_TITLE, STREAM_ORDER = "e2e-stream", "End to end: a stream through the five services", 6
# What issue #17 asks of this machine (2 cores): a 5-minute episode alone in a brief within 3 minutes, and a tail
# no longer than 1.5 times the median.
TARGET_ALONE_P50_S = 180.0
TARGET_P95_OVER_P50 = 1.5
EMBEDDED_TABLE = "alone: embedded `podbrief run` (seconds)"
STREAM_LOAD = 0.8
SERVICE_STEPS = (
    ("ingest", None, "discovered"),
    ("transcription", "discovered", "transcribed"),
    ("extraction", "transcribed", "extracted"),
    ("clustering", "extracted", "clustered"),
    ("delivery", "clustered", "in_brief"),
)
TOTAL = "feed update to brief_s"


@dataclass
class Config:
    alone: int
    stream: int
    minutes: float
    shows: int
    interval_s: float | None
    embedded: bool
    keep_embedded: bool
    services: bool
    idle_s: float
    timeout_s: float
    peer_episodes: int
    smoke: bool
    out_dir: Path
    command: str
    preset: str | None
    stream_preset: str | None
    stream_llm: str
    stream_minutes: float
    calibrate: int


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


SCRIPTED = (
    "a scripted stand-in on loopback that answers at once (podbrief_testing.llm.ScriptedModel: each chunk's longest "
    "sentence, written as '<speaker> says that <sentence>', verified as supported)"
)


def stand_in() -> Any:
    """The stream's scripted LLM: it picks the longest sentence of each chunk (a greeting is the shortest)."""
    from podbrief_testing.llm import ScriptedModel

    def longest(sentences: dict[int, str]) -> list[dict[str, Any]]:
        n = max(sentences, key=lambda k: len(sentences[k]))
        return [{"s": n, "e": n, "h": "the point", "w": 4}]

    return ScriptedModel(select=longest)


def stream_model(cfg: Config) -> str:
    return SCRIPTED if cfg.stream_llm == "scripted" else extraction_model(cfg.stream_preset)


def extraction_model(preset: str | None) -> str:
    """The extraction model the services and `podbrief run` use with `preset` (unset: their default)."""
    from podbrief_extraction.settings import ExtractionSettings

    overrides = {"model_preset": preset} if preset else {}
    s = ExtractionSettings(_env_file=None, **overrides)  # type: ignore[call-arg]
    if s.llm.base_url:
        return f"{s.llm.model} at {s.llm.base_url}"
    name = getattr(s, "model_preset", None)
    return f"{Path(s.llama.gguf).name} on the embedded llama-server" + (f" (preset {name})" if name else "")


# --- the five services ---------------------------------------------------------------------------------------


def alone_row(svc: Services, ep: Episode, usage: dict[str, Any]) -> dict[str, Any]:
    """One episode released alone: seconds per stage (coarse, then broken down), and what each service spent."""
    at = svc.episode_row(ep)
    row: dict[str, Any] = {"episode": ep.guid, "audio_s": ep.duration_s, "clip": at["clip"]}
    for name, a, b in SERVICE_STEPS:
        start = 0.0 if a is None else at[f"{a}_s"]
        end = at[f"{b}_s"]
        row[f"{name}_s"] = None if start is None or end is None else round(end - start, 1)
    row[TOTAL] = at["in_brief_s"]
    row["insights"] = at["insights"]
    fine = breakdown(svc.episode_points(ep), usage["counters"])
    row.update({f"{name} s": v for name, v in fine["stages_s"].items()})
    row.update(llm_requests=fine["llm_requests"], llm_tokens_in=fine["llm_tokens_in"])
    row["llm_tokens_out"] = fine["llm_tokens_out"]
    row.update(llm_prompt_tok_s=fine["llm_prompt_tok_s"], llm_generation_tok_s=fine["llm_generation_tok_s"])
    row[AT_TRIAL] = at_trial_rates(row[TOTAL], fine)
    row["handler_s"] = usage["handler_s"]
    row["cpu_s"] = usage["cpu_s"]
    return row


def run_services(
    cfg: Config, alone: list[Episode], stream: list[Episode], svc: Services, alone_timeout_s: float
) -> dict[str, Any]:
    failure: str | None = None
    alone_rows: list[dict[str, Any]] = []
    cpu0 = svc.snapshot()
    for ep in alone:
        before = svc.snapshot()
        eid = svc.release(ep)
        failure = svc.wait_in_brief({eid}, time.time() + alone_timeout_s)
        after = svc.snapshot()
        row = alone_row(svc, ep, after.minus(before))
        alone_rows.append(row)
        if not failure and row[TOTAL] is None and (row["insights"] or 0) > 0:
            failure = f"{ep.guid} did not reach a brief within {alone_timeout_s:g} s"
        if failure:
            break
    interval = cfg.interval_s
    busy = [sum(r["handler_s"].values()) for r in alone_rows]
    if interval is None:
        # The machine's capacity from the alone runs: an episode keeps it busy for its handler seconds.
        interval = round(statistics.median(busy) / STREAM_LOAD, 1) if busy else 60.0
    stream_rows: list[dict[str, Any]] = []
    wall0 = time.time()
    timed_out = False
    if not failure and stream:
        log(f"stream: {len(stream)} episodes, one every {interval:g} s")
        eids = set()
        for i, ep in enumerate(stream):
            wait = wall0 + i * interval - time.time()
            if wait > 0:
                time.sleep(wait)
            eids.add(svc.release(ep))
        deadline = wall0 + cfg.timeout_s + interval * len(stream)
        failure = svc.wait_in_brief(eids, deadline)
        timed_out = time.time() >= deadline
        stream_rows = [svc.episode_row(ep) for ep in stream]
    wall1 = time.time()
    end = svc.snapshot()
    assert svc.observer is not None
    done = [svc.observer.done_at(svc.ids[ep.index]) for ep in stream if ep.index in svc.ids]
    finished = [t for t in done if t is not None]
    return {
        "alone": alone_rows,
        "stream": stream_rows,
        "interval_s": interval,
        "busy_s_per_episode": busy,
        "stream_wall_s": round(wall1 - wall0, 1),
        "stream_span_s": round(max(finished) - wall0, 1) if finished else None,
        "stream_finished": len(finished),
        "last_release_s": round(max(svc.released[svc.ids[e.index]] for e in stream) - wall0, 1) if stream else None,
        "cpu_s": end.minus(cpu0)["cpu_s"],
        "timed_out": timed_out,
        "failure": failure,
        "startup_s": svc.startup_s,
        "startup_cpu_s": svc.startup_cpu_s,
        "idle_cpu_s_per_s": svc.idle_cpu_s_per_s,
        **svc.totals(),
    }


def run_peer(files: list[Path]) -> dict[str, Any] | None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.e2e_peer", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if out.returncode != 0:
        log(f"the faster-whisper peer failed:\n{out.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- report --------------------------------------------------------------------------------------------------


def stage_table(embedded: list[dict[str, Any]], services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """p50 seconds per stage of each alone set (startup, then bench/e2e_stages.py's rows), and each stage's share
    of its set's p50 total."""

    def p50(rows: list[dict[str, Any]], key: str) -> float | None:
        return pct([r[key] for r in rows if r.get(key) is not None], 50)

    emb_total, svc_total = p50(embedded, TOTAL), p50(services, TOTAL)
    out = []
    for name, what in [("startup", "interpreter, imports, the five services starting (models loaded, warmed)"), *ROWS]:
        key = "startup_s" if name == "startup" else f"{name} s"
        e = p50(embedded, key)
        s = p50(services, key) if name != "startup" else None
        out.append(
            {
                "stage": name,
                "embedded p50 s": e,
                "embedded share": f"{e / emb_total:.0%}" if e is not None and emb_total else "–",
                "five services p50 s": s if name != "startup" else "– (running)",
                "five services share": f"{s / svc_total:.0%}" if s is not None and svc_total else "–",
                "what": what,
            }
        )
    out.append(
        {
            "stage": "feed update to brief",
            "embedded p50 s": emb_total,
            "embedded share": "100%" if emb_total else "–",
            "five services p50 s": svc_total,
            "five services share": "100%" if svc_total else "–",
            "what": "the total (embedded: from the command's start, startup included)",
        }
    )
    return out


def per_service(r: dict[str, Any], audio_min: float) -> dict[str, Any]:
    """CPU per audio minute, RSS and startup per service over one part's run on Kafka (the capacity model's
    layout)."""
    cpu_per_min = {n: round(r["cpu_s"][n] / audio_min, 3) for n in SERVICES} if audio_min else {}
    return {
        "cpu_s_per_audio_min": cpu_per_min,
        "cpu_s_per_audio_min_total": round(sum(cpu_per_min.values()), 3),
        "cpu_s": r["cpu_s"],
        "idle_cpu_s_per_s": r["idle_cpu_s_per_s"],
        "startup_s": r["startup_s"],
        "startup_cpu_s": r["startup_cpu_s"],
        "peak_rss_mb": {n: round(r["peaks"][n]["total_mb"], 1) for n in SERVICES},
        "peak_rss_mb_split": {
            n: {"process": round(r["peaks"][n]["main_mb"], 1), "children": round(r["peaks"][n]["children_mb"], 1)}
            for n in SERVICES
        },
        "llm_tokens": r["tokens"],
        "llm_chunks": int(r["chunks"]),
        "transcribed_audio_minutes": round(r["transcribed_audio_s"] / 60.0, 2),
        "delivery_runs": r["delivery_runs"],
        "emails": r["emails"],
        "failure": r["failure"],
        "timed_out": r["timed_out"],
        "dead_lettered": r["dead_lettered"],
    }


def summarise_alone(
    cfg: Config, emb: list[EmbeddedRun], r: dict[str, Any] | None, load: dict[str, Any]
) -> dict[str, Any]:
    embedded_rows = [x.row for x in emb]
    emb_lat = [x.row[TOTAL] for x in emb if x.ok and x.row.get(TOTAL) is not None]
    fine = [name for name, _ in ROWS]
    extra: dict[str, Any] = {
        "extraction_model": extraction_model(cfg.preset),
        "load_average": load,
        "targets": {"alone_p50_s": TARGET_ALONE_P50_S},
        "embedded": {
            "runs": len(emb),
            "ok": sum(x.ok for x in emb),
            "latency_s": {"p50": pct(emb_lat, 50), "max": max(emb_lat) if emb_lat else None},
            "latency_s_at_trial_llm_rates_p50": pct([x.row[AT_TRIAL] for x in emb if x.row.get(AT_TRIAL)], 50),
            "stage_p50_s": {
                n: pct([x[k] for x in embedded_rows if x.get(k) is not None], 50)
                for n, k in [("startup", "startup_s"), *((n, f"{n} s") for n in fine)]
            },
            "cpu_s_p50": pct([x.cpu_s for x in emb if x.ok], 50),
            "peak_rss_mb": round(max((x.peak_rss_mb for x in emb), default=0.0), 1),
        },
    }
    if r is None:
        return extra
    alone = r["alone"]
    alone_lat = [x[TOTAL] for x in alone if x[TOTAL] is not None]
    audio_min = sum(x["audio_s"] for x in alone) / 60.0
    extra["alone"] = {
        "runs": len(alone),
        "latency_s": {"p50": pct(alone_lat, 50), "max": max(alone_lat) if alone_lat else None},
        "latency_s_at_trial_llm_rates_p50": pct([x[AT_TRIAL] for x in alone if x.get(AT_TRIAL)], 50),
        "stage_p50_s": {n: pct([x[f"{n} s"] for x in alone if x.get(f"{n} s") is not None], 50) for n in fine},
        "handler_s_p50": {n: pct([x["handler_s"][n] for x in alone], 50) for n in SERVICES if n != "ingest"},
        "llm_tokens_p50": {
            "in": pct([x["llm_tokens_in"] for x in alone], 50),
            "out": pct([x["llm_tokens_out"] for x in alone], 50),
        },
    }
    # The keys below keep the layout bench/capacity.py reads (the five services' alone runs).
    extra.update(
        {
            "episodes": len(alone),
            "episodes_finished": sum(1 for x in alone if x["extraction_s"] is not None),
            "audio_minutes": round(audio_min, 2),
            "insights": sum(x["insights"] or 0 for x in alone),
            **per_service(r, audio_min),
        }
    )
    return extra


def summarise_stream(cfg: Config, r: dict[str, Any], load: dict[str, Any]) -> dict[str, Any]:
    alone, stream = r["alone"], r["stream"]
    latencies = [x["in_brief_s"] for x in stream if x["in_brief_s"] is not None]
    p50, p95 = pct(latencies, 50), pct(latencies, 95)
    audio_min = sum(x["audio_s"] for x in [*alone, *stream]) / 60.0
    span = r["stream_span_s"]
    return {
        "extraction_model": stream_model(cfg),
        "episode_minutes": cfg.stream_minutes,
        "load_average": load,
        "targets": {"p95_over_p50": TARGET_P95_OVER_P50},
        "calibration": {
            "episodes": len(alone),
            "busy_s_per_episode": r["busy_s_per_episode"],
            "latency_s": [x[TOTAL] for x in alone],
        },
        "stream": {
            "episodes": len(stream),
            "interval_s": r["interval_s"],
            "load": STREAM_LOAD if cfg.interval_s is None else None,
            "busy_s_per_episode_p50": pct(r["busy_s_per_episode"], 50),
            "p95_over_p50": round(p95 / p50, 2) if p50 and p95 else None,
        },
        "episodes": len(alone) + len(stream),
        "episodes_finished": len(alone) + r["stream_finished"],
        "audio_minutes": round(audio_min, 2),
        "episodes_per_hour": round(r["stream_finished"] / (span / 3600.0), 2) if span else None,
        "busy_span_s": span,
        "last_release_s": r["last_release_s"],
        "latency_s": {
            "p50": p50,
            "p95": p95,
            "max": round(max(latencies), 1) if latencies else None,
            "episodes_measured": len(latencies),
            "episodes_with_insights": sum(1 for x in stream if (x["insights"] or 0) > 0),
        },
        "stage_latency_p50_s": {
            stage: pct([x[f"{stage}_s"] for x in stream if x[f"{stage}_s"] is not None], 50) for stage in STAGES
        },
        "insights": sum(x["insights"] or 0 for x in stream),
        "release_interval_s": r["interval_s"],
        "wall_s": r["stream_wall_s"],
        **per_service(r, audio_min),
    }


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None  # type: ignore[assignment]
    return d


def _verdict(what: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    met = "not measured" if value is None else ("met" if value <= target else "NOT met")
    return {"target": what, "measured": value, "at most": target, "unit": unit, "verdict": met}


def verdicts_alone(extra: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [
        _verdict(what, value, TARGET_ALONE_P50_S, "s")
        for what, value in (
            ("embedded `podbrief run`, one episode alone: p50", extra["embedded"]["latency_s"]["p50"]),
            ("five services on Kafka, one episode alone: p50", _get(extra, "alone", "latency_s", "p50")),
        )
    ]
    trial = "(estimate, not measured) {} with the LLM at the issue trial's rates (68 / 23 tok/s)"
    for what, value in (
        ("embedded", extra["embedded"].get("latency_s_at_trial_llm_rates_p50")),
        ("five services", _get(extra, "alone", "latency_s_at_trial_llm_rates_p50")),
    ):
        if value is not None:
            row = _verdict(trial.format(what), value, TARGET_ALONE_P50_S, "s")
            rows.append(row | {"verdict": row["verdict"] + " (estimate)"})
    return rows


def verdicts_stream(extra: dict[str, Any]) -> list[dict[str, Any]]:
    what = f"five services on Kafka, stream of {extra['stream']['episodes']}: p95 / p50"
    return [_verdict(what, extra["stream"]["p95_over_p50"], TARGET_P95_OVER_P50, "")]


def peer_comparison(peer: dict[str, Any] | None, extra: dict[str, Any]) -> list[report.Comparison]:
    if not (peer and peer.get("audio_s") and extra.get("cpu_s_per_audio_min")):
        return []
    peer_per_min = round(peer["cpu_s"] / (peer["audio_s"] / 60.0), 3)
    return [
        report.Comparison(
            "transcription",
            "CPU s per audio minute (pipeline stage)",
            "CPU s/audio min",
            extra["cpu_s_per_audio_min"]["transcription"],
            "plain faster-whisper",
            peer_per_min,
            "lower",
            f"faster-whisper alone on {peer['files']} of the same episode files ({peer['audio_s'] / 60:.1f} audio "
            "min), same model and settings, model load excluded, run after the pipeline",
        )
    ]


def service_table(r: dict[str, Any], extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "service": n,
            "CPU s": r["cpu_s"][n],
            "CPU s/audio min": extra["cpu_s_per_audio_min"][n],
            "idle CPU s/s": r["idle_cpu_s_per_s"][n],
            "startup s": r["startup_s"][n],
            "startup CPU s": r["startup_cpu_s"][n],
            "peak RSS MB": extra["peak_rss_mb"][n],
            "of which children MB": extra["peak_rss_mb_split"][n]["children"],
        }
        for n in SERVICES
    ]


def alone_table(alone: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **{k: v for k, v in x.items() if k not in ("handler_s", "cpu_s")},
            **{f"{n} handler s": s for n, s in x["handler_s"].items()},
            "CPU s (all services)": round(sum(x["cpu_s"].values()), 1),
        }
        for x in alone
    ]


def write_alone(
    cfg: Config, r: dict[str, Any] | None, emb: list[EmbeddedRun], extra: dict[str, Any], peer: dict[str, Any] | None
) -> None:
    details: dict[str, list[dict[str, Any]]] = {"targets": verdicts_alone(extra)}
    embedded_rows = [x.row for x in emb]
    alone = r["alone"] if r else []
    details["time per stage, p50 of the alone runs"] = stage_table(embedded_rows, alone)
    if embedded_rows:
        details[EMBEDDED_TABLE] = embedded_rows
    if alone:
        details["alone: five services on Kafka (seconds; handler and CPU seconds per service)"] = alone_table(alone)
    if r is not None:
        details["per service (the alone runs on Kafka)"] = service_table(r, extra)
    report.update_section(
        KEY,
        title=TITLE,
        command=cfg.command,
        comparisons=peer_comparison(peer, extra),
        details=details,
        notes=notes_alone(cfg, r, extra),
        extra=extra,
        headline=headline_alone(extra),
        order=ORDER,
        out_dir=cfg.out_dir,
    )


def write_stream(cfg: Config, r: dict[str, Any], extra: dict[str, Any], peer: dict[str, Any] | None) -> None:
    lat, st = extra["latency_s"], extra["stream"]
    details: dict[str, list[dict[str, Any]]] = {"targets": verdicts_stream(extra)}
    details["stream"] = [
        {
            "episodes": f"{extra['episodes_finished'] - len(r['alone'])}/{st['episodes']}",
            "audio min each": cfg.stream_minutes,
            "one every s": st["interval_s"],
            "feed update to brief p50 s": lat["p50"],
            "p95 s": lat["p95"],
            "p95/p50": st["p95_over_p50"],
            "max s": lat["max"],
            "episodes/hour": extra["episodes_per_hour"],
            "measured on": f"{lat['episodes_measured']} of {lat['episodes_with_insights']} with insights",
        }
    ]
    if r["alone"]:
        details["calibration: episodes alone (seconds)"] = alone_table(r["alone"])
    details["stream: per episode (seconds after the feed update)"] = r["stream"]
    details["per service (calibration and stream)"] = service_table(r, extra)
    report.update_section(
        STREAM_KEY,
        title=STREAM_TITLE,
        command=cfg.command,
        comparisons=peer_comparison(peer, extra),
        details=details,
        notes=notes_stream(cfg, r, extra),
        extra=extra,
        headline=headline_stream(extra),
        order=STREAM_ORDER,
        out_dir=cfg.out_dir,
    )


def headline_alone(extra: dict[str, Any]) -> list[tuple[str, str]]:
    """The README's summary rows (bench/publish.py)."""
    rows = [
        (
            "one 5-minute episode alone, feed update → insight in a composed brief, p50",
            f"embedded `podbrief run` {extra['embedded']['latency_s']['p50']} s (cold start included); five "
            f"services on Kafka {_get(extra, 'alone', 'latency_s', 'p50')} s; extraction: {extra['extraction_model']}",
        )
    ]
    if extra.get("cpu_s_per_audio_min"):
        cpu = extra["cpu_s_per_audio_min"]
        rows.append(
            (
                "CPU s per audio minute (" + " / ".join(SERVICES) + ")",
                " / ".join(str(cpu[n]) for n in SERVICES) + " (extraction includes its llama-server)",
            )
        )
    return rows


def headline_stream(extra: dict[str, Any]) -> list[tuple[str, str]]:
    lat, st = extra["latency_s"], extra["stream"]
    return [
        (
            f"a stream of {st['episodes']} {extra['episode_minutes']:g}-minute episodes, one every "
            f"{st['interval_s']:g} s, through the five services (extraction: {extra['extraction_model']})",
            f"feed update → brief p50 {lat['p50']} s, p95 {lat['p95']} s (p95/p50 {st['p95_over_p50']}); "
            f"{extra['episodes_per_hour']} episodes/hour",
        )
    ]


EPISODES_NOTE = (
    "two espeak-ng voices per show speaking bench/e2e_scripts.py plus one real recording from ../shared/data/audio, "
    "Ogg/Opus, in loopback RSS feeds. The clock starts at the feed update (the new item published and ingest told "
    "to poll it; a deployment sees the update at its next poll, `INGEST_POLL_INTERVAL_S`) and stops at the first "
    "composed brief carrying one of the episode's insights. "
)
SERVICES_NOTE = (
    "Five services: OS processes with their CPU defaults on real Kafka (own namespace) and PostgreSQL (own "
    "database), started and warmed before the clock, as a deployment runs them; stages from the events' "
    "`occurred_at` on the bus; a brief is composed (`POST /v1/admin/deliveries/run`, force, a new brief date each "
    "run, 3 readers) as soon as delivery's consumed count grows, so a daily schedule is not counted. "
)


def _load_text(load: dict[str, Any]) -> str:
    return (
        f"Load average (1/5/15 min) before the run {'/'.join(f'{x:.2f}' for x in load['before'])}, after "
        f"{'/'.join(f'{x:.2f}' for x in load['after'])}. "
    )


def _tail(r: dict[str, Any] | None, extra: dict[str, Any]) -> str:
    text = " The machine is shared with other work: wall-clock figures are noisy, CPU seconds less so."
    if r is not None:
        text += f" Logs: {r['logs']}."
        if r["failure"]:
            text += f" FAILED: {r['failure']}."
        if r["timed_out"]:
            text += f" TIMED OUT: {extra['episodes_finished']} of {extra['episodes']} finished."
    return text


def notes_alone(cfg: Config, r: dict[str, Any] | None, extra: dict[str, Any]) -> str:
    text = (
        f"Extraction model: {extra['extraction_model']}. {_load_text(extra['load_average'])}"
        f"Episodes: {cfg.minutes:g} minutes each, released one at a time (nothing queues), " + EPISODES_NOTE + ""
        "Embedded: `podbrief run --feeds FILE` in a fresh data directory, nothing warm but the per-user caches that "
        "every run after a machine's first has (the llama-server build, the models and the system prompts' saved "
        "slot states, restored instead of read): startup is the interpreter, "
        "the imports and the five services starting (Whisper, MiniLM and the LLM loaded and warmed; 'of which "
        "services start' is that last part); the stages come from the run's `run-timeline.json`. "
        + SERVICES_NOTE
        + "Time per stage (bench/e2e_stages.py): each service's stage between the events on either side of it, split "
        "by the service's own counters read before and after the episode: the handler's seconds (transcription: "
        "download and transcription proper; extraction: the LLM's chat-completion requests, split by the server's "
        "own timings into reading the prompts, writing the answers and the rest) and the rest, the time the episode "
        "waited for the service (bus delivery, queue); llm tok/s are the server's own rates. The rows marked "
        "'estimate' are not measurements: each episode's total with the LLM server's seconds replaced by its "
        "tokens at the rates of the issue's trial of the default model (68 prompt / 23 generation tok/s on a quiet "
        "2-core machine), for machines where it runs as fast as there. CPU: each service's "
        "process tree (extraction's llama-server included) over the alone runs on Kafka, model loading excluded "
        "(startup apart); peak RSS sampled every 0.5 s. Only transcription has a like-for-like peer (plain "
        "faster-whisper, same files and settings)."
    )
    if extra["embedded"].get("kept_from"):
        text += f" The embedded runs are kept from the run of {extra['embedded']['kept_from']} (--keep-embedded)."
    return text + _tail(r, extra)


def notes_stream(cfg: Config, r: dict[str, Any], extra: dict[str, Any]) -> str:
    st = extra["stream"]
    how = (
        f"at {STREAM_LOAD:.0%} of the measured capacity: the p50 handler seconds of a calibration episode alone "
        f"({st['busy_s_per_episode_p50']} s) / {STREAM_LOAD}"
        if cfg.interval_s is None
        else "as given on the command line"
    )
    text = (
        "What this measures: whether an episode waits for others (a batch barrier, issue #17 item 2), from the tail "
        "of the latency against its median under a steady load below saturation. Extraction's LLM is "
        f"{extra['extraction_model']}, on {cfg.stream_minutes:g}-minute episodes, so that enough episodes for a "
        "p95 fit one sitting on this machine: the latencies are this configuration's, not the default model's (the "
        f"`{KEY}` section measures that, alone). {_load_text(extra['load_average'])}"
        f"Episodes: {cfg.stream_minutes:g} minutes each, " + EPISODES_NOTE + SERVICES_NOTE + ""
        f"Calibration: {len(r['alone'])} episode(s) alone first. Stream: {st['episodes']} episodes one every "
        f"{st['interval_s']:g} s ({how}), into three feeds; p50 and p95 over the episodes that reached a brief "
        f"(numpy's linear interpolation: with {st['episodes']} episodes the p95 lies among the slowest two). "
        f"Episodes/hour = finished episodes / first release to the last one's last insight clustered "
        f"({extra['busy_span_s']} s, the last release at {extra['last_release_s']} s). CPU: each service's process "
        "tree over calibration and stream, model loading excluded (startup apart)."
    )
    return text + _tail(r, extra)


def kept_embedded(out_dir: Path) -> tuple[list[EmbeddedRun], str]:
    """The embedded runs of the e2e section an earlier run wrote (`--keep-embedded`), and that run's date."""
    section = report.load(out_dir)["sections"].get(KEY)
    rows = (section or {}).get("details", {}).get(EMBEDDED_TABLE)
    if not rows:
        raise SystemExit(f"--keep-embedded: {out_dir / 'results.json'} has no embedded runs in its {KEY!r} section")
    runs = [EmbeddedRun(r, r.get("cpu_s") or 0.0, r.get("peak_rss_mb") or 0.0, "exit_code" not in r) for r in rows]
    return runs, str(section["extra"]["embedded"].get("kept_from") or section["date"])  # type: ignore[index]


def print_alone(extra: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title=f"podbrief end to end (CPU), one episode alone, extraction: {extra['extraction_model']}")
    for col in ("target", "measured", "at most", "verdict"):
        t.add_column(col)
    for row in verdicts_alone(extra):
        t.add_row(row["target"], str(row["measured"]), f"{row['at most']:g} {row['unit']}", row["verdict"])
    console.print(t)
    s = Table(title="time per stage, p50 of the alone runs (s)")
    s.add_column("stage")
    s.add_column("embedded", justify="right")
    s.add_column("five services", justify="right")
    svc = _get(extra, "alone", "stage_p50_s") or {}
    for name in ["startup", *(n for n, _ in ROWS)]:
        s.add_row(name, str(extra["embedded"]["stage_p50_s"].get(name)), str(svc.get(name, "–")))
    console.print(s)


def print_stream(extra: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title=f"podbrief stream, extraction: {extra['extraction_model']}")
    for col in ("target", "measured", "at most", "verdict"):
        t.add_column(col)
    for row in verdicts_stream(extra):
        t.add_row(row["target"], str(row["measured"]), f"{row['at most']:g}", row["verdict"])
    console.print(t)


# --- main ----------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Config:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--alone", type=int, default=None, help="episodes run alone, embedded and on Kafka (3; smoke 1)")
    ap.add_argument("--minutes", type=float, default=None, help="minutes of audio per alone episode (5; smoke 0.33)")
    ap.add_argument("--preset", default=None, help="extraction model preset of the alone part (default: the default)")
    ap.add_argument("--stream", type=int, default=None, help="episodes of the stream on Kafka (20; smoke 2)")
    ap.add_argument("--stream-minutes", type=float, default=None, help="minutes per stream episode (1.5; smoke 0.33)")
    ap.add_argument(
        "--stream-llm",
        choices=("scripted", "model"),
        default="scripted",
        help="the stream's extraction LLM: a scripted stand-in that answers at once (default), or a model "
        "(--stream-preset) on the embedded llama-server",
    )
    ap.add_argument("--stream-preset", default="tiny", help="with --stream-llm model: its preset ('' = default)")
    ap.add_argument("--calibrate", type=int, default=None, help="stream episodes first run alone (2; smoke 1)")
    ap.add_argument("--interval", type=float, default=None, help="seconds between stream releases (default: 80%% load)")
    ap.add_argument("--shows", type=int, default=None, help="feeds, up to 3 (3; smoke 1)")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded `podbrief run` part")
    ap.add_argument("--no-services", action="store_true", help="alone part: the embedded runs only (no Kafka)")
    ap.add_argument(
        "--keep-embedded",
        action="store_true",
        help="skip it, and keep the embedded runs of the e2e section already in results.json (from an earlier run)",
    )
    ap.add_argument("--idle", type=float, default=None, help="seconds of idle measurement (10; smoke 3)")
    ap.add_argument("--timeout", type=float, default=None, help="seconds an episode alone may take (900)")
    ap.add_argument("--peer-episodes", type=int, default=None, help="episodes for the faster-whisper peer (1)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, same code path")
    ap.add_argument("--out-dir", type=Path, default=report.DEFAULT_DIR)
    a = ap.parse_args(argv)
    s = a.smoke
    return Config(
        alone=a.alone if a.alone is not None else (1 if s else 3),
        stream=a.stream if a.stream is not None else (2 if s else 20),
        minutes=a.minutes if a.minutes is not None else (20 / 60 if s else 5.0),
        shows=a.shows if a.shows is not None else (1 if s else 3),
        interval_s=a.interval if a.interval is not None else (5.0 if s else None),
        embedded=not (a.no_embedded or a.keep_embedded),
        keep_embedded=a.keep_embedded,
        services=not a.no_services,
        idle_s=a.idle if a.idle is not None else (3.0 if s else 10.0),
        timeout_s=a.timeout if a.timeout is not None else 900.0,
        peer_episodes=a.peer_episodes if a.peer_episodes is not None else 1,
        smoke=s,
        out_dir=a.out_dir,
        command="python -m bench.e2e " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
        preset=a.preset or None,
        stream_preset=a.stream_preset or None,
        stream_llm=a.stream_llm,
        stream_minutes=a.stream_minutes if a.stream_minutes is not None else (20 / 60 if s else 1.5),
        calibrate=a.calibrate if a.calibrate is not None else (1 if s else 2),
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    # SIGTERM (bench/run.py passing on a Ctrl-C, a CI timeout) unwinds like an exception, so the finally blocks
    # stop the services, drop the database and delete the run's topics.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    logs = REPO / "test-artifacts" / "bench-e2e"
    alone = build(cfg.alone, cfg.minutes, cfg.shows) if cfg.alone else []
    stream_eps = build(cfg.calibrate + cfg.stream, cfg.stream_minutes, cfg.shows) if cfg.stream else []
    log(f"{len(alone)} alone and {len(stream_eps)} stream episodes ready")
    failed = False
    peer_files = [e.path for e in (alone or stream_eps)[: cfg.peer_episodes]]
    results: list[tuple[str, Any]] = []
    kafka = bool((alone and cfg.services) or stream_eps)
    with infrastructure() if kafka else contextlib.nullcontext(None) as infra:
        if alone:
            load: dict[str, Any] = {"before": os.getloadavg()}
            emb: list[EmbeddedRun] = []
            kept_from = None
            if cfg.keep_embedded:
                emb, kept_from = kept_embedded(cfg.out_dir)
                log(f"embedded part: {len(emb)} run(s) kept from the section of {kept_from}")
            if cfg.embedded:
                # Before the services start: one LLM process on the machine at a time.
                work = Path(f"/tmp/podbrief-bench-embedded-{os.getpid()}")
                emb = run_embedded(alone, work, logs / "embedded", cfg.timeout_s, cfg.preset)
            r = None
            if cfg.services and infra is not None:
                with Services(infra, alone, cfg.idle_s, cfg.preset) as svc:
                    r = run_services(cfg, alone, [], svc, cfg.timeout_s)
            load["after"] = os.getloadavg()
            extra = summarise_alone(cfg, emb, r, load)
            if kept_from is not None:
                extra["embedded"]["kept_from"] = kept_from
            results.append(("alone", (r, emb, extra)))
            failed |= bool(r and (r["failure"] or r["timed_out"])) or not all(x.ok for x in emb)
        if stream_eps:
            assert infra is not None
            load = {"before": os.getloadavg()}
            from podbrief_testing.llm import LoopbackOpenAI

            llm = LoopbackOpenAI(responder=stand_in()) if cfg.stream_llm == "scripted" else None
            preset = None if llm else cfg.stream_preset
            try:
                with Services(infra, stream_eps, cfg.idle_s, preset, llm and llm.base_url) as svc:
                    calib, stream = stream_eps[: cfg.calibrate], stream_eps[cfg.calibrate :]
                    r = run_services(cfg, calib, stream, svc, cfg.timeout_s)
            finally:
                if llm is not None:
                    llm.stop()
            load["after"] = os.getloadavg()
            extra = summarise_stream(cfg, r, load)
            results.append(("stream", (r, None, extra)))
            failed |= bool(r["failure"] or r["timed_out"] or extra["episodes_finished"] < extra["episodes"])
    peer = None
    if peer_files:
        log(f"peer: plain faster-whisper on {len(peer_files)} episode file(s)")
        peer = run_peer(peer_files)
        if peer is not None:
            peer["files"] = len(peer_files)
    for part, (r, emb, extra) in results:
        extra["peer"] = peer
        if part == "alone":
            write_alone(cfg, r, emb, extra, peer)
            print_alone(extra)
        else:
            write_stream(cfg, r, extra, peer)
            print_stream(extra)
    parts = ", ".join(KEY if p == "alone" else STREAM_KEY for p, _ in results)
    log(f"wrote {parts} to {cfg.out_dir / 'results.json'} and RESULTS.md ({time.monotonic() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
