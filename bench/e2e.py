"""End to end on CPU, from a feed update to the episode's first insight in a composed brief, three ways in one run:

1. embedded, alone: `podbrief run` (the embedded default) on one 5-minute episode, `--alone` times, each in a
   fresh data directory with nothing warm (bench/e2e_embedded.py);
2. five services, alone: the services as OS processes on real Kafka and PostgreSQL (bench/e2e_services.py), one
   episode at a time, each released once the previous one is in a brief, so nothing queues;
3. five services, stream: `--stream` more episodes released one every `--interval` s into three feeds. By default
   the interval keeps the machine at 80% of the capacity measured in part 2 (the handler seconds an episode
   needs): below saturation, where the latency says how the pipeline schedules work rather than how long a
   backlog has grown.

    python -m bench.e2e [--alone 3] [--stream 8] [--interval S] [--minutes 5] [--no-embedded | --keep-embedded]
                        [--smoke]

A run too long for one sitting splits in two: `--stream 0` first (both alone parts), then `--keep-embedded` (the
five services again, with the stream), which takes the embedded runs from the section the first run wrote and
says so in the notes.

Reports the p50 of each alone set with its time per stage, the stream's p50, p95 and p95/p50 and episodes per
hour, CPU seconds per audio minute per service (model loading excluded, reported apart) and peak RSS per service
(children included: extraction's llama-server). Writes the `e2e` section through bench/report.py."""

from __future__ import annotations

import argparse
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
from bench.e2e_embedded import STEPS, EmbeddedRun
from bench.e2e_embedded import run_all as run_embedded
from bench.e2e_services import REPO, SERVICES, STAGES, Services, infrastructure, log

KEY, TITLE, ORDER = "e2e", "End to end: feed update to brief", 5
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


@dataclass
class Config:
    alone: int
    stream: int
    minutes: float
    shows: int
    interval_s: float | None
    embedded: bool
    keep_embedded: bool
    idle_s: float
    timeout_s: float
    peer_episodes: int
    smoke: bool
    out_dir: Path
    command: str


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def extraction_model() -> str:
    """The extraction model the services and `podbrief run` use by default (what this run measured)."""
    from podbrief_extraction.settings import ExtractionSettings

    s = ExtractionSettings(_env_file=None)  # type: ignore[call-arg]
    if s.llm.base_url:
        return f"{s.llm.model} at {s.llm.base_url}"
    preset = getattr(s, "model_preset", None)
    return f"{Path(s.llama.gguf).name} on the embedded llama-server" + (f" (preset {preset})" if preset else "")


# --- the five services ---------------------------------------------------------------------------------------


def alone_row(svc: Services, ep: Episode, usage: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One episode released alone: seconds per stage, and what each service spent on it."""
    at = svc.episode_row(ep)
    row: dict[str, Any] = {"episode": ep.guid, "audio_s": ep.duration_s, "clip": at["clip"]}
    for name, a, b in SERVICE_STEPS:
        start = 0.0 if a is None else at[f"{a}_s"]
        end = at[f"{b}_s"]
        row[f"{name}_s"] = None if start is None or end is None else round(end - start, 1)
    row["feed update to brief_s"] = at["in_brief_s"]
    row["insights"] = at["insights"]
    row["handler_s"] = usage["handler_s"]
    row["cpu_s"] = usage["cpu_s"]
    return row


def run_services(cfg: Config, alone: list[Episode], stream: list[Episode], svc: Services) -> dict[str, Any]:
    failure: str | None = None
    alone_rows: list[dict[str, Any]] = []
    cpu0 = svc.snapshot()
    for ep in alone:
        before = svc.snapshot()
        eid = svc.release(ep)
        failure = svc.wait_in_brief({eid}, time.time() + cfg.timeout_s)
        after = svc.snapshot()
        row = alone_row(svc, ep, after.minus(before))
        alone_rows.append(row)
        if not failure and row["feed update to brief_s"] is None and (row["insights"] or 0) > 0:
            failure = f"{ep.guid} did not reach a brief within {cfg.timeout_s:g} s"
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
    """p50 seconds per stage of each alone set, and each stage's share of its total."""
    names = ["startup", *(n for n, _, _ in SERVICE_STEPS)]
    emb = {n: pct([r[f"{n}_s"] for r in embedded if r.get(f"{n}_s") is not None], 50) for n in names}
    svc = {n: pct([r[f"{n}_s"] for r in services if r.get(f"{n}_s") is not None], 50) for n in names[1:]}
    emb_total = pct([r["feed update to brief_s"] for r in embedded if r.get("feed update to brief_s")], 50)
    svc_total = pct([r["feed update to brief_s"] for r in services if r.get("feed update to brief_s")], 50)
    rows = []
    for n in names:
        e, s = emb.get(n), svc.get(n)
        rows.append(
            {
                "stage": n,
                "embedded p50 s": e,
                "embedded share": f"{e / emb_total:.0%}" if e is not None and emb_total else "–",
                "five services p50 s": s if n != "startup" else "– (running)",
                "five services share": f"{s / svc_total:.0%}" if s is not None and svc_total else "–",
            }
        )
    rows.append(
        {
            "stage": "feed update to brief",
            "embedded p50 s": emb_total,
            "embedded share": "100%" if emb_total else "–",
            "five services p50 s": svc_total,
            "five services share": "100%" if svc_total else "–",
        }
    )
    return rows


def summarise(
    cfg: Config, emb: list[EmbeddedRun], r: dict[str, Any] | None, peer: dict[str, Any] | None, load: dict[str, Any]
) -> dict[str, Any]:
    embedded_rows = [x.row for x in emb]
    emb_lat = [x.row["feed update to brief_s"] for x in emb if x.ok]
    extra: dict[str, Any] = {
        "extraction_model": extraction_model(),
        "load_average": load,
        "targets": {"alone_p50_s": TARGET_ALONE_P50_S, "p95_over_p50": TARGET_P95_OVER_P50},
        "embedded": {
            "runs": len(emb),
            "ok": sum(x.ok for x in emb),
            "latency_s": {"p50": pct(emb_lat, 50), "max": max(emb_lat) if emb_lat else None},
            "stage_p50_s": {
                n: pct([x[f"{n}_s"] for x in embedded_rows if x.get(f"{n}_s") is not None], 50) for n, _, _ in STEPS
            },
            "cpu_s_p50": pct([x.cpu_s for x in emb if x.ok], 50),
            "peak_rss_mb": round(max((x.peak_rss_mb for x in emb), default=0.0), 1),
        },
        "peer": peer,
    }
    if r is None:
        return extra
    alone, stream = r["alone"], r["stream"]
    alone_lat = [x["feed update to brief_s"] for x in alone if x["feed update to brief_s"] is not None]
    latencies = [x["in_brief_s"] for x in stream if x["in_brief_s"] is not None]
    p50, p95 = pct(latencies, 50), pct(latencies, 95)
    episodes = len(alone) + len(stream)
    audio_min = sum(x["audio_s"] for x in [*alone, *stream]) / 60.0
    cpu_per_min = {n: round(r["cpu_s"][n] / audio_min, 3) for n in SERVICES} if audio_min else {}
    span = r["stream_span_s"]
    extra.update(
        {
            "alone": {
                "runs": len(alone),
                "latency_s": {"p50": pct(alone_lat, 50), "max": max(alone_lat) if alone_lat else None},
                "stage_p50_s": {
                    n: pct([x[f"{n}_s"] for x in alone if x[f"{n}_s"] is not None], 50) for n, _, _ in SERVICE_STEPS
                },
                "handler_s_p50": {n: pct([x["handler_s"][n] for x in alone], 50) for n in SERVICES if n != "ingest"},
            },
            "stream": {
                "episodes": len(stream),
                "interval_s": r["interval_s"],
                "load": STREAM_LOAD if cfg.interval_s is None else None,
                "busy_s_per_episode_p50": pct(r["busy_s_per_episode"], 50),
                "p95_over_p50": round(p95 / p50, 2) if p50 and p95 else None,
            },
            # The keys below keep the layout bench/capacity.py reads (the five services, both parts together).
            "episodes": episodes,
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
            "insights": sum(x["insights"] or 0 for x in [*alone, *stream]),
            "llm_tokens": r["tokens"],
            "llm_chunks": int(r["chunks"]),
            "transcribed_audio_minutes": round(r["transcribed_audio_s"] / 60.0, 2),
            "release_interval_s": r["interval_s"],
            "delivery_runs": r["delivery_runs"],
            "emails": r["emails"],
            "wall_s": r["stream_wall_s"],
            "timed_out": r["timed_out"],
            "failure": r["failure"],
            "dead_lettered": r["dead_lettered"],
        }
    )
    return extra


def verdicts(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue beside what this run measured."""
    rows = []
    for what, value in (
        ("embedded `podbrief run`, one episode alone: p50", extra["embedded"]["latency_s"]["p50"]),
        ("five services on Kafka, one episode alone: p50", _get(extra, "alone", "latency_s", "p50")),
    ):
        rows.append(_verdict(what, value, TARGET_ALONE_P50_S, "s"))
    rows.append(
        _verdict(
            "five services on Kafka, stream: p95 / p50",
            _get(extra, "stream", "p95_over_p50"),
            TARGET_P95_OVER_P50,
            "",
        )
    )
    return rows


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        d = d.get(p) if isinstance(d, dict) else None  # type: ignore[assignment]
    return d


def _verdict(what: str, value: float | None, target: float, unit: str) -> dict[str, Any]:
    met = "not measured" if value is None else ("met" if value <= target else "NOT met")
    return {"target": what, "measured": value, "at most": target, "unit": unit, "verdict": met}


def write_section(cfg: Config, r: dict[str, Any] | None, emb: list[EmbeddedRun], extra: dict[str, Any]) -> None:
    peer = extra["peer"]
    comparisons = []
    if peer and peer.get("audio_s") and r is not None:
        peer_per_min = round(peer["cpu_s"] / (peer["audio_s"] / 60.0), 3)
        comparisons.append(
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
        )
    details: dict[str, list[dict[str, Any]]] = {"targets": verdicts(extra)}
    embedded_rows = [x.row for x in emb]
    alone = r["alone"] if r else []
    details["time per stage, p50 of the alone runs"] = stage_table(embedded_rows, alone)
    if embedded_rows:
        details[EMBEDDED_TABLE] = embedded_rows
    if alone:
        details["alone: five services on Kafka (seconds; handler and CPU seconds per service)"] = [
            {
                **{k: v for k, v in x.items() if k not in ("handler_s", "cpu_s")},
                **{f"{n} handler s": s for n, s in x["handler_s"].items()},
                "CPU s (all services)": round(sum(x["cpu_s"].values()), 1),
            }
            for x in alone
        ]
    if r is not None and r["stream"]:
        lat, st = extra["latency_s"], extra["stream"]
        details["stream: five services on Kafka"] = [
            {
                "episodes": f"{extra['episodes_finished'] - len(alone)}/{st['episodes']}",
                "one every s": st["interval_s"],
                "feed update to brief p50 s": lat["p50"],
                "p95 s": lat["p95"],
                "p95/p50": st["p95_over_p50"],
                "max s": lat["max"],
                "episodes/hour": extra["episodes_per_hour"],
                "measured on": f"{lat['episodes_measured']} of {lat['episodes_with_insights']} with insights",
            }
        ]
        details["stream: per episode (seconds after the feed update)"] = r["stream"]
    if r is not None:
        details["per service (both parts on Kafka)"] = [
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
    report.update_section(
        KEY,
        title=TITLE,
        command=cfg.command,
        comparisons=comparisons,
        details=details,
        notes=notes(cfg, r, extra),
        extra=extra,
        headline=headline(extra),
        order=ORDER,
        out_dir=cfg.out_dir,
    )


def headline(extra: dict[str, Any]) -> list[tuple[str, str]]:
    """The README's summary rows (bench/publish.py)."""
    rows = [
        (
            "one 5-minute episode alone, feed update → insight in a composed brief, p50",
            f"embedded `podbrief run` {extra['embedded']['latency_s']['p50']} s (cold start included); five "
            f"services on Kafka {_get(extra, 'alone', 'latency_s', 'p50')} s; extraction: {extra['extraction_model']}",
        )
    ]
    if _get(extra, "stream", "episodes"):
        lat, st = extra["latency_s"], extra["stream"]
        rows.append(
            (
                f"a stream of {st['episodes']} episodes, one every {st['interval_s']:g} s, through the five services",
                f"feed update → brief p50 {lat['p50']} s, p95 {lat['p95']} s (p95/p50 {st['p95_over_p50']}); "
                f"{extra['episodes_per_hour']} episodes/hour",
            )
        )
    if extra.get("cpu_s_per_audio_min"):
        cpu = extra["cpu_s_per_audio_min"]
        rows.append(
            (
                "CPU s per audio minute (" + " / ".join(SERVICES) + ")",
                " / ".join(str(cpu[n]) for n in SERVICES) + " (extraction includes its llama-server)",
            )
        )
    return rows


def notes(cfg: Config, r: dict[str, Any] | None, extra: dict[str, Any]) -> str:
    load = extra["load_average"]
    text = (
        f"Extraction model: {extra['extraction_model']}. Load average (1/5/15 min) before the run "
        f"{'/'.join(f'{x:.2f}' for x in load['before'])}, after {'/'.join(f'{x:.2f}' for x in load['after'])}. "
        f"Episodes: {cfg.minutes:g} minutes each, two espeak-ng voices per show speaking bench/e2e_scripts.py plus "
        "one real recording from ../shared/data/audio, Ogg/Opus, in loopback RSS feeds. The clock starts at the feed "
        "update (the new item published and ingest told to poll it; a deployment sees the update at its next poll, "
        "`INGEST_POLL_INTERVAL_S`) and stops at the first composed brief carrying one of the episode's insights. "
        "Embedded: `podbrief run --feeds FILE` in a fresh data directory, nothing warm: startup is the interpreter, "
        "the imports and the five services starting (Whisper, MiniLM and the LLM loaded and warmed; 'of which "
        "services start' is that last part), and delivery is consuming the clustered insights, seeing the pipeline "
        "idle and composing the brief; stages come from the run's `run-timeline.json`. Five services: OS processes "
        "with their CPU defaults on real Kafka (own namespace) and PostgreSQL (own database), started and warmed "
        "before the clock, as a deployment runs them; stages from the events' `occurred_at` on the bus, handler "
        "seconds from each service's `handler_seconds` metric; a brief is composed (`POST /v1/admin/deliveries/run`, "
        "force, a new brief date each run, 3 readers) as soon as delivery's consumed count grows, so a daily "
        "schedule is not counted. "
    )
    if r is not None and r["stream"]:
        st = extra["stream"]
        how = (
            f"at {STREAM_LOAD:.0%} of the measured capacity: the p50 handler seconds of an alone episode "
            f"({st['busy_s_per_episode_p50']} s) / {STREAM_LOAD}"
            if cfg.interval_s is None
            else "as given on the command line"
        )
        text += (
            f"Stream: {st['episodes']} episodes one every {st['interval_s']:g} s ({how}); episodes/hour = finished "
            f"episodes / first release to the last one's last insight clustered ({extra['busy_span_s']} s, the last "
            f"release at {extra['last_release_s']} s). CPU: each service's process tree (extraction's llama-server "
            "included) over both parts on Kafka, model loading excluded (startup apart), idle polling and the "
            "benchmark's own requests included; peak RSS sampled every 0.5 s. "
        )
    text += (
        "Only transcription has a like-for-like peer (plain faster-whisper, same files and settings). The machine is "
        "shared with other work: wall-clock figures are noisy, CPU seconds less so."
    )
    if extra["embedded"].get("kept_from"):
        text += f" The embedded runs are kept from the run of {extra['embedded']['kept_from']} (--keep-embedded)."
    if r is not None:
        text += f" Logs: {r['logs']}."
        if r["failure"]:
            text += f" FAILED: {r['failure']}."
        if r["timed_out"]:
            text += f" TIMED OUT: {extra['episodes_finished']} of {extra['episodes']} finished."
    return text


def kept_embedded(out_dir: Path) -> tuple[list[EmbeddedRun], str]:
    """The embedded runs of the e2e section an earlier run wrote (`--keep-embedded`), and that run's date."""
    section = report.load(out_dir)["sections"].get(KEY)
    rows = (section or {}).get("details", {}).get(EMBEDDED_TABLE)
    if not rows:
        raise SystemExit(f"--keep-embedded: {out_dir / 'results.json'} has no embedded runs in its {KEY!r} section")
    runs = [EmbeddedRun(r, r.get("cpu_s") or 0.0, r.get("peak_rss_mb") or 0.0, "exit_code" not in r) for r in rows]
    return runs, str(section["extra"]["embedded"].get("kept_from") or section["date"])  # type: ignore[index]


def print_summary(extra: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title=f"podbrief end to end (CPU), extraction: {extra['extraction_model']}")
    for col in ("target", "measured", "at most", "verdict"):
        t.add_column(col)
    for row in verdicts(extra):
        t.add_row(row["target"], str(row["measured"]), f"{row['at most']:g} {row['unit']}", row["verdict"])
    console.print(t)
    s = Table(title="time per stage, p50 of the alone runs (s)")
    s.add_column("stage")
    s.add_column("embedded", justify="right")
    s.add_column("five services", justify="right")
    svc = _get(extra, "alone", "stage_p50_s") or {}
    for name, _, _ in STEPS:
        s.add_row(name, str(extra["embedded"]["stage_p50_s"].get(name)), str(svc.get(name, "–")))
    console.print(s)


# --- main ----------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> Config:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--alone", type=int, default=None, help="episodes run alone, embedded and on Kafka (3; smoke 1)")
    ap.add_argument("--stream", type=int, default=None, help="episodes of the stream on Kafka (8; smoke 2)")
    ap.add_argument("--interval", type=float, default=None, help="seconds between stream releases (default: 80%% load)")
    ap.add_argument("--minutes", type=float, default=None, help="minutes of audio per episode (5; smoke 0.33)")
    ap.add_argument("--shows", type=int, default=None, help="feeds, up to 3 (3; smoke 1)")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded `podbrief run` part")
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
        stream=a.stream if a.stream is not None else (2 if s else 8),
        minutes=a.minutes if a.minutes is not None else (20 / 60 if s else 5.0),
        shows=a.shows if a.shows is not None else (1 if s else 3),
        interval_s=a.interval if a.interval is not None else (5.0 if s else None),
        embedded=not (a.no_embedded or a.keep_embedded),
        keep_embedded=a.keep_embedded,
        idle_s=a.idle if a.idle is not None else (3.0 if s else 10.0),
        timeout_s=a.timeout if a.timeout is not None else 900.0,
        peer_episodes=a.peer_episodes if a.peer_episodes is not None else 1,
        smoke=s,
        out_dir=a.out_dir,
        command="python -m bench.e2e " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    # SIGTERM (bench/run.py passing on a Ctrl-C, a CI timeout) unwinds like an exception, so the finally blocks
    # stop the services, drop the database and delete the run's topics.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    load: dict[str, Any] = {"before": os.getloadavg()}
    # Alone episodes come first (embedded and on Kafka run the same ones), then the stream's.
    episodes = build(cfg.alone + cfg.stream, cfg.minutes, cfg.shows)
    alone, stream = episodes[: cfg.alone], episodes[cfg.alone :]
    log(f"{len(episodes)} episodes, {sum(e.duration_s for e in episodes) / 60:.1f} audio min ready")
    logs = REPO / "test-artifacts" / "bench-e2e"
    emb: list[EmbeddedRun] = []
    kept_from = None
    if cfg.keep_embedded:
        emb, kept_from = kept_embedded(cfg.out_dir)
        log(f"embedded part: {len(emb)} run(s) kept from the section of {kept_from}")
    if cfg.embedded:
        # Before the services start: one LLM process on the machine at a time.
        emb = run_embedded(alone, Path(f"/tmp/podbrief-bench-embedded-{os.getpid()}"), logs / "embedded", cfg.timeout_s)
    with infrastructure() as infra, Services(infra, episodes, cfg.idle_s) as svc:
        r = run_services(cfg, alone, stream, svc)
    load["after"] = os.getloadavg()
    peer = None
    if cfg.peer_episodes > 0:
        files = [e.path for e in episodes[: cfg.peer_episodes]]
        log(f"peer: plain faster-whisper on {len(files)} episode file(s)")
        peer = run_peer(files)
        if peer is not None:
            peer["files"] = len(files)
    extra = summarise(cfg, emb, r, peer, load)
    if kept_from is not None:
        extra["embedded"]["kept_from"] = kept_from
    write_section(cfg, r, emb, extra)
    print_summary(extra)
    log(f"wrote section {KEY!r} to {cfg.out_dir / 'results.json'} and RESULTS.md ({time.monotonic() - t0:.0f} s)")
    failed = r["timed_out"] or r["failure"] or extra["episodes_finished"] < extra["episodes"]
    return 1 if failed or not all(x.ok for x in emb) else 0


if __name__ == "__main__":
    raise SystemExit(main())
