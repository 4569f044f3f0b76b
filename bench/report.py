"""One writer for bench/results.json and bench/RESULTS.md. Each benchmark replaces only its own section, so
stages run separately (or on another day) keep the others' figures, each stamped with its date and machine."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from podbrief import host
from podbrief_testing.machine import QUIET_OTHERS_CORES

SCHEMA_VERSION = 1
DEFAULT_DIR = Path(__file__).resolve().parent


MEASURED = "measured"


@dataclass(frozen=True)
class Comparison:
    """One figure of podbrief beside its peer measured in the same run. `ratio` is podbrief / peer; `better`
    says which way is good, so a reader need not guess whether 0.8 is a win. `peer_basis` is "measured" when the
    peer ran the whole workload, else "extrapolated from <what was timed and how it was scaled>"."""

    stage: str
    metric: str
    unit: str
    podbrief: float | None
    peer_name: str
    peer: float | None
    better: Literal["lower", "higher"]
    note: str = ""
    peer_basis: str = MEASURED
    ratio: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.peer_basis != MEASURED and not self.peer_basis.startswith("extrapolated from "):
            raise ValueError(f"peer_basis must be {MEASURED!r} or 'extrapolated from ...', not {self.peer_basis!r}")
        if self.podbrief is not None and self.peer not in (None, 0):
            object.__setattr__(self, "ratio", round(self.podbrief / self.peer, 3))  # type: ignore[operator]


@dataclass(frozen=True)
class Floor:
    """How close a stage comes to what this hardware allows at best: `floor` is the estimated lower bound on
    `metric`, `measured` what podbrief did; `efficiency` = floor / measured (1.0 would be at the limit)."""

    stage: str
    metric: str
    unit: str
    measured: float
    floor: float
    basis: str
    efficiency: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "efficiency", round(self.floor / self.measured, 3) if self.measured else 0.0)


def machine() -> dict[str, Any]:
    return {**host.describe(), "gpu": None}


def load(out_dir: Path = DEFAULT_DIR) -> dict[str, Any]:
    path = out_dir / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"schema_version": SCHEMA_VERSION, "sections": {}}
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        # An older layout: its figures cannot be trusted to mean the same thing; start over.
        return {"schema_version": SCHEMA_VERSION, "sections": {}}
    return data


def update_section(
    key: str,
    *,
    title: str,
    command: str,
    comparisons: list[Comparison] = (),  # type: ignore[assignment]
    floors: list[Floor] = (),  # type: ignore[assignment]
    details: dict[str, list[dict[str, Any]]] | None = None,
    notes: str = "",
    extra: dict[str, Any] | None = None,
    headline: list[tuple[str, str]] | None = None,
    order: int = 50,
    out_dir: Path = DEFAULT_DIR,
) -> dict[str, Any]:
    """Replace section `key` in results.json and re-render RESULTS.md from it. `details` are extra tables
    (name -> rows of dicts, columns taken from the first row); `order` places the section in the report;
    `headline`: (what, figure) rows for the README's summary (bench/publish.py), phrased by the stage itself."""
    data = load(out_dir)
    section = {
        "title": title,
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "order": order,
        "comparisons": [asdict(c) for c in comparisons],
        "floors": [asdict(f) for f in floors],
        "details": details or {},
        "notes": notes.strip(),
        "extra": extra or {},
        "headline": [{"what": w, "figure": f} for w, f in headline or ()],
    }
    data["sections"][key] = section
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "results.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(out_dir / "results.json")
    (out_dir / "RESULTS.md").write_text(render(data))
    return section


def validate(data: dict[str, Any]) -> list[str]:
    """Problems with a results.json document (empty when well formed); the CI smoke test asserts on this."""
    problems: list[str] = []
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append("schema_version missing or unknown")
    sections = data.get("sections")
    if not isinstance(sections, dict) or not sections:
        return [*problems, "no sections"]
    for key, s in sections.items():
        for name in ("title", "command", "date", "machine", "comparisons", "floors", "details"):
            if name not in s:
                problems.append(f"{key}: missing {name}")
        for c in s.get("comparisons", []):
            for name in ("stage", "metric", "unit", "podbrief", "peer_name", "peer", "ratio", "better"):
                if name not in c:
                    problems.append(f"{key}: comparison without {name}")
            if c.get("better") not in ("lower", "higher"):
                problems.append(f"{key}: comparison {c.get('metric')!r} has no direction")
            # Sections written before peer_basis existed lack it (rendered "not recorded"); a wrong value is an error.
            basis = c.get("peer_basis", MEASURED)
            if basis != MEASURED and not str(basis).startswith("extrapolated from "):
                problems.append(f"{key}: comparison {c.get('metric')!r}: peer figure neither measured nor extrapolated")
        for f in s.get("floors", []):
            if not f.get("basis"):
                problems.append(f"{key}: floor {f.get('metric')!r} without its basis")
    return problems


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return out


def _basis(c: dict[str, Any]) -> str:
    basis = c.get("peer_basis")
    if basis is None:
        return "not recorded"
    return "measured" if basis == MEASURED else "extrapolated"


def run_info(s: dict[str, Any]) -> dict[str, Any] | None:
    """How the section's stage ran under `make bench` (bench/run.py): times, load, other processes; None when the
    section was written by a stage run on its own."""
    run = s.get("extra", {}).get("run")
    return run if isinstance(run, dict) and "load" in run else None


def describe_run(s: dict[str, Any]) -> str:
    run = run_info(s)
    if run is None:
        return (
            "Start and end times and the machine's load were not recorded (the section was written before "
            "`make bench` sampled the load, or by its stage's module run directly): whether other work shared the "
            "cores is unknown, so its wall-clock figures may be inflated."
        )
    load = run["load"]
    verdict = "quiet" if load["quiet"] else "**shared: other processes used the cores during this section**"
    return (
        f"Measured {load['started_at']} → {load['ended_at']} ({load['wall_s']:,.0f} s) in `make bench` run "
        f"{run['run_id']}; load average (1 min, sampled every {run['sample_interval_s']:g} s) "
        f"{load['load1_min']:.2f}–{load['load1_max']:.2f}, mean {load['load1_mean']:.2f}; CPU busy "
        f"{load['busy_cores']:.2f} of {load['cores']} cores: {load['own_cores']:.2f} this stage, "
        f"{load['others_cores']:.2f} other processes, steal {load['steal_pct']:.1f}% ({verdict})."
    )


def busy_summary(sections: list[tuple[str, dict[str, Any]]]) -> str:
    """One line: which sections were measured on a quiet machine, which SHARED, which without a record, with
    when each was measured."""

    def when(s: dict[str, Any]) -> str:
        run = run_info(s)
        stamp = run["load"]["started_at"] if run is not None else s["date"]
        return f"{stamp[:16].replace('T', ' ')} UTC"

    groups: dict[str, list[str]] = {"quiet": [], "SHARED": [], "load not recorded": []}
    for key, s in sections:
        run = run_info(s)
        group = "load not recorded" if run is None else "quiet" if run["load"]["quiet"] else "SHARED"
        groups[group].append(f"{key} ({when(s)})")
    text = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in groups.items() if keys) + "."
    return text[0].upper() + text[1:]


def _runs_table(sections: list[tuple[str, dict[str, Any]]]) -> list[str]:
    rows = []
    for key, s in sections:
        run = run_info(s)
        if run is None:
            rows.append([key, "–", "–", s["date"], "–", "–", "–", "–", "not recorded"])
            continue
        load = run["load"]
        rows.append(
            [
                key,
                run["run_id"],
                load["started_at"],
                load["ended_at"],
                load["wall_s"],
                f"{load['load1_mean']:.2f} ({load['load1_min']:.2f}–{load['load1_max']:.2f})",
                load["own_cores"],
                load["others_cores"],
                "quiet" if load["quiet"] else "SHARED",
            ]
        )
    return _table(
        [
            "section",
            "make bench run",
            "started (UTC)",
            "ended (UTC)",
            "wall s",
            "load avg mean (min–max)",
            "stage cores",
            "other processes' cores",
            "machine",
        ],
        rows,
    )


def render(data: dict[str, Any]) -> str:
    sections = sorted(data["sections"].items(), key=lambda kv: (kv[1].get("order", 50), kv[0]))
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (each `make bench-<stage>` replaces its own section). Every figure is beside its",
        "peer measured in the same run on the same machine; the ratio is podbrief / peer, and *better* says",
        "which direction wins. A peer figure is *measured* when the peer ran the whole workload, *extrapolated*",
        "(with what from) otherwise. `make bench` runs the stages one after another, never two at once, and samples",
        "the machine's load average and every other process's CPU throughout each section: a section marked SHARED",
        f"had other processes using more than {QUIET_OTHERS_CORES:g} cores on average, and its wall-clock figures",
        "are inflated by them. Machine-readable copy: `bench/results.json`. Capacity model: `bench/CAPACITY.md`.",
        "",
    ]
    if sections:
        lines += ["## When and how busy", "", busy_summary(sections), ""]
        lines += _runs_table(sections)
        lines.append("")
        lines += ["## Overview", ""]
        rows = [
            [
                c["stage"],
                c["metric"],
                c["podbrief"],
                c["peer_name"],
                c["peer"],
                _basis(c),
                c["ratio"],
                c["better"],
                c["unit"],
            ]
            for _, s in sections
            for c in s["comparisons"]
        ]
        if rows:
            lines += _table(
                ["stage", "metric", "podbrief", "peer", "peer figure", "peer figure is", "ratio", "better", "unit"],
                rows,
            )
            lines.append("")
        floors = [
            [f["stage"], f["metric"], f["measured"], f["floor"], f["efficiency"], f["unit"], f["basis"]]
            for _, s in sections
            for f in s["floors"]
        ]
        if floors:
            lines += ["### Against the hardware's floor", ""]
            lines += _table(["stage", "metric", "measured", "floor", "floor/measured", "unit", "basis"], floors)
            lines.append("")
    for _key, s in sections:
        m = s["machine"]
        lines += [
            f"## {s['title']}",
            "",
            f"`{s['command']}` — {s['date']} on {m.get('cpu')} ({m.get('cores')} cores, {m.get('memory_gb')} GB)",
            "",
            describe_run(s),
            "",
        ]
        if s["comparisons"]:
            lines += _table(
                ["metric", "podbrief", "peer", "peer figure", "peer figure is", "ratio", "better", "unit", "note"],
                [
                    [
                        c["metric"],
                        c["podbrief"],
                        c["peer_name"],
                        c["peer"],
                        c.get("peer_basis", "not recorded"),
                        c["ratio"],
                        c["better"],
                        c["unit"],
                        c["note"],
                    ]
                    for c in s["comparisons"]
                ],
            )
            lines.append("")
        for name, rows in s["details"].items():
            if not rows:
                continue
            columns = list(rows[0])
            lines += [f"**{name}**", ""]
            lines += _table(columns, [[r.get(col) for col in columns] for r in rows])
            lines.append("")
        if s["notes"]:
            lines += [s["notes"], ""]
    return "\n".join(lines).rstrip() + "\n"
