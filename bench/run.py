"""`make bench`: every stage's benchmark beside its peer, then the end-to-end run and the capacity model.

    python -m bench.run [--smoke] [--only ingest,transcription,...] [--out-dir DIR] [-- STAGE ARGS]

Arguments after `--` go to the stage's own benchmark (with one stage in --only), e.g.
`python -m bench.run --only clustering -- --sizes 10000`.

Each stage runs as its own process (so its peak RSS is its own), in pipeline order, one after another: never
two at once, and never beside another `bench.run` (a lock refuses a second one). Throughout each stage the
machine's load average and every process's CPU are sampled, so each section records when it ran and whether
other processes shared the cores. A failing stage does not stop the others, but the run exits non-zero and says
which failed. Each stage writes its own section of results.json and RESULTS.md in DIR (default bench/); its output
goes to a log file. At the end the overview (every figure beside its peer, and the floors) is printed, and, for
bench/ itself, the headline figures are written into README.md (bench/publish.py)."""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from podbrief_testing.machine import LoadSampler, LoadSummary
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import report

ROOT = Path(__file__).resolve().parent.parent
# Machine-wide, not per checkout: two clones' benchmarks on one machine would skew each other just the same.
LOCK = Path(os.environ.get("PODBRIEF_BENCH_LOCK", "/tmp/podbrief-bench.lock"))
SAMPLE_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Stage:
    key: str
    args: tuple[str, ...]
    # Sections the stage writes (the capacity model writes none).
    writes: tuple[str, ...]
    optional_module: str | None = None


STAGES = (
    Stage("ingest", ("-m", "bench.ingest"), ("ingest",)),
    Stage("transcription", ("-m", "bench.transcription", "report"), ("transcription",)),
    Stage("extraction", ("-m", "bench.extraction"), ("extraction",)),
    Stage("clustering", ("-m", "bench.clustering"), ("clustering",)),
    Stage("delivery", ("-m", "bench.delivery"), ("delivery",)),
    Stage("e2e", ("-m", "bench.e2e"), ("e2e", "e2e-stream"), optional_module="bench.e2e"),
    Stage("capacity", ("-m", "bench.capacity"), (), optional_module="bench.capacity"),
)
NAMES = tuple(s.key for s in STAGES)


@dataclass
class Outcome:
    stage: str
    status: str  # "ok", "failed", "timeout", "skipped"
    wall_s: float = 0.0
    peak_rss_mb: float | None = None
    log: Path | None = None
    detail: str = ""
    cpu_s: float | None = None
    load: LoadSummary | None = None


def command(stage: Stage, smoke: bool, out_dir: Path, extra: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    cmd = [sys.executable, *stage.args, *extra]
    if stage.key == "capacity":
        # The capacity model reads the results just written and renders CAPACITY.md beside them.
        return [*cmd, "--results", str(out_dir / "results.json"), "--out", str(out_dir / "CAPACITY.md")]
    cmd += ["--out-dir", str(out_dir)]
    if smoke:
        cmd.append("--smoke")
    return cmd


def available(stage: Stage) -> bool:
    if stage.optional_module is None:
        return True
    try:
        return importlib.util.find_spec(stage.optional_module) is not None
    except ImportError:
        return False


def run_stage(stage: Stage, cmd: list[str], log: Path, timeout_s: float | None) -> Outcome:
    """One stage as a child process; wait4 gives that child's own rusage, so ru_maxrss is its peak alone
    (the stages that spawn helpers wait for them, and a waited-for grandchild's peak counts too)."""
    sampler = LoadSampler(f"bench-{stage.key}", interval_s=SAMPLE_INTERVAL_S)
    # The mark lets the sampler tell the stage's processes (daemonised servers included) from everything else.
    env = sampler.env()
    # `bench` (this package) lives at the repository root: importable by every stage wherever it runs from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    log.parent.mkdir(parents=True, exist_ok=True)
    sampler.start()
    outcome: Outcome | None = None
    try:
        outcome = _run_child(stage, cmd, env, log, timeout_s)
    finally:
        load = sampler.stop(own_cpu_s=None if outcome is None else outcome.cpu_s)
    outcome.load = load
    return outcome


def _cpu(usage: resource.struct_rusage) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def _run_child(stage: Stage, cmd: list[str], env: dict[str, str], log: Path, timeout_s: float | None) -> Outcome:
    started = time.perf_counter()
    with log.open("wb") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = None if timeout_s is None else started + timeout_s
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    # Its whole process group: a stage may have started servers or helper processes.
                    os.killpg(proc.pid, signal.SIGKILL)
                    _, status, usage = os.wait4(proc.pid, 0)
                    proc.returncode = -9
                    return Outcome(
                        stage.key,
                        "timeout",
                        time.perf_counter() - started,
                        usage.ru_maxrss / 1024,
                        log,
                        cpu_s=_cpu(usage),
                    )
                time.sleep(0.2)
        except KeyboardInterrupt:
            # The stage runs in its own session (so its servers are one group): Ctrl-C has to be passed on.
            os.killpg(proc.pid, signal.SIGTERM)
            os.wait4(proc.pid, 0)
            proc.returncode = -15
            raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    ok = proc.returncode == 0
    detail = "" if ok else f"exit {proc.returncode}: " + _tail(log)
    return Outcome(stage.key, "ok" if ok else "failed", wall, usage.ru_maxrss / 1024, log, detail, _cpu(usage))


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def record(out_dir: Path, outcomes: list[Outcome], run_id: str) -> None:
    """Each written section gets how its stage ran in `extra.run`: the run, wall, peak RSS, CPU, and the load
    sampled throughout (start and end times, load average, other processes' CPU); RESULTS.md re-rendered."""
    path = out_dir / "results.json"
    data = report.load(out_dir)
    if not data["sections"]:
        return
    by_key = {o.stage: o for o in outcomes if o.status == "ok"}
    for stage in STAGES:
        o = by_key.get(stage.key)
        for key in stage.writes:
            if o is not None and key in data["sections"]:
                extra = data["sections"][key].setdefault("extra", {})
                extra["run"] = {
                    "run_id": run_id,
                    # The stage that measured it: a stage may write several sections (e2e writes e2e and
                    # e2e-stream), which then share its run.
                    "stage": stage.key,
                    "wall_s": round(o.wall_s, 1),
                    "peak_rss_mb": _round(o.peak_rss_mb),
                    "cpu_s": _round(o.cpu_s),
                    "sample_interval_s": SAMPLE_INTERVAL_S,
                    "load": None if o.load is None else o.load.as_dict(),
                }
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    (out_dir / "RESULTS.md").write_text(report.render(data))


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def overview(console: Console, out_dir: Path, outcomes: list[Outcome]) -> None:
    data = report.load(out_dir)
    table = Table(title=f"Benchmarks ({out_dir / 'RESULTS.md'})", show_lines=False)
    for col in ("stage", "metric", "podbrief", "peer", "peer figure", "ratio", "better"):
        table.add_column(col, overflow="fold")
    sections = sorted(data["sections"].items(), key=lambda kv: (kv[1].get("order", 50), kv[0]))
    for _, s in sections:
        for c in s["comparisons"]:
            table.add_row(
                c["stage"],
                f"{c['metric']} ({c['unit']})",
                report._fmt(c["podbrief"]),
                c["peer_name"],
                report._fmt(c["peer"]),
                report._fmt(c["ratio"]),
                c["better"],
            )
    console.print(table)
    floors = Table(title="Against the hardware's floor")
    for col in ("stage", "metric", "measured", "floor", "floor/measured"):
        floors.add_column(col, overflow="fold")
    for _, s in sections:
        for f in s["floors"]:
            floors.add_row(
                f["stage"],
                f"{f['metric']} ({f['unit']})",
                report._fmt(f["measured"]),
                report._fmt(f["floor"]),
                report._fmt(f["efficiency"]),
            )
    console.print(floors)
    runs = Table(title="Stages")
    for col in ("stage", "status", "wall s", "peak RSS MB", "log"):
        runs.add_column(col, overflow="fold")
    for o in outcomes:
        style = {"ok": "green", "skipped": "yellow"}.get(o.status, "red")
        runs.add_row(
            o.stage,
            f"[{style}]{o.status}[/]" + (f" {o.detail}" if o.detail else ""),
            f"{o.wall_s:.1f}",
            "" if o.peak_rss_mb is None else f"{o.peak_rss_mb:.0f}",
            "" if o.log is None else str(o.log),
        )
    console.print(runs)


def exclusive_run() -> TextIO | None:
    """The machine-wide benchmark lock, held until this process exits; None when another run holds it."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    f = LOCK.open("a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


def parse_only(value: str | None) -> list[Stage]:
    if not value:
        return list(STAGES)
    wanted = [w.strip() for w in value.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in NAMES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [s for s in STAGES if s.key in wanted]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness and the files, in minutes")
    ap.add_argument("--only", default=None, help=f"comma-separated stages, of: {','.join(NAMES)}")
    ap.add_argument("--out-dir", type=Path, default=report.DEFAULT_DIR, help="results.json, RESULTS.md, CAPACITY.md")
    ap.add_argument("--log-dir", type=Path, default=None, help="stage logs (default test-artifacts/bench, or DIR/logs)")
    ap.add_argument("--stage-timeout", type=float, default=None, help="seconds per stage (default: none; smoke 600)")
    ap.add_argument("stage_args", nargs=argparse.REMAINDER, help="after --: arguments for the one stage in --only")
    args = ap.parse_args(argv)
    stage_args = [a for a in args.stage_args if a != "--"] if args.stage_args else []
    out_dir = args.out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.log_dir is not None:
        log_dir = args.log_dir.resolve()
    elif out_dir == report.DEFAULT_DIR.resolve():
        log_dir = ROOT / "test-artifacts" / "bench"
    else:
        log_dir = out_dir / "logs"
    timeout = args.stage_timeout if args.stage_timeout is not None else (600.0 if args.smoke else None)
    stages = parse_only(args.only)
    if stage_args and len(stages) != 1:
        ap.error("arguments after -- need exactly one stage in --only")
    # Wide enough for the overview when the output is a log or a pipe, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 160)
    run_id = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # Smoke runs publish nothing (their load is still sampled, and shows in a real run's sections as SHARED).
    if not args.smoke:
        lock = exclusive_run()
        if lock is None:
            holder = LOCK.read_text().strip() if LOCK.exists() else "?"
            console.print(
                f"[red]another benchmark run holds {LOCK} ({holder}); benchmarks never run beside each other: "
                "wait for it to finish[/]"
            )
            return 2
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}, started {run_id}, {' '.join(sys.argv)}\n")
        lock.flush()
    outcomes: list[Outcome] = []
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        for i, stage in enumerate(stages, 1):
            label = f"[{i}/{len(stages)}] {stage.key}"
            if not available(stage):
                outcomes.append(Outcome(stage.key, "skipped", detail=f"{stage.optional_module} not present"))
                progress.add_task(f"{label}: skipped (no {stage.optional_module})", total=1, completed=1)
                continue
            task = progress.add_task(label + " ...", total=None)
            cmd = command(stage, args.smoke, out_dir, stage_args)
            outcome = run_stage(stage, cmd, log_dir / f"{stage.key}.log", timeout)
            outcomes.append(outcome)
            rss = "" if outcome.peak_rss_mb is None else f", peak RSS {outcome.peak_rss_mb:.0f} MB"
            progress.update(
                task,
                description=f"{label}: {outcome.status} in {outcome.wall_s:.0f} s{rss}",
                total=1,
                completed=1,
            )
    record(out_dir, outcomes, run_id)
    overview(console, out_dir, outcomes)
    if out_dir == report.DEFAULT_DIR.resolve() and any(o.status == "ok" for o in outcomes):
        from bench import publish

        publish.write_readme(report.load(out_dir))
        console.print(f"README.md: headline figures rewritten from {out_dir / 'results.json'}")
    failed = [o for o in outcomes if o.status in ("failed", "timeout")]
    problems = report.validate(report.load(out_dir))
    for p in problems:
        console.print(f"[red]results.json: {p}[/]")
    if failed:
        console.print(f"[red]{len(failed)} stage(s) failed: {', '.join(o.stage for o in failed)}[/] (logs: {log_dir})")
        return 1
    console.print(f"[green]all {len(outcomes)} stage(s) done[/]; report: {out_dir / 'RESULTS.md'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
