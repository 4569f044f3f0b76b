"""The README's benchmark figures, written from bench/results.json by the run that measured them (`make bench`
calls `write_readme` at its end), never copied by hand: the headline of every section beside when it was measured
and whether the machine was quiet, and the capacity model's summary computed from the same results.

    python -m bench.publish   # rewrites README.md's generated section `bench` from bench/results.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podbrief.generated import write_section

from bench import report

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "bench"
SOURCE = "`make bench` (bench/publish.py from bench/results.json)"


def _fmt(v: Any, unit: str = "") -> str:
    text = report._fmt(v)
    return f"{text} {unit}".strip() if unit and v is not None else text


def headline_rows(section: dict[str, Any]) -> list[tuple[str, str]]:
    """The section's own headline (phrased by its stage), else its first comparison."""
    rows = [(h["what"], h["figure"]) for h in section.get("headline", [])]
    if rows or not section["comparisons"]:
        return rows
    c = section["comparisons"][0]
    basis = c.get("peer_basis")
    peer = f"{c['peer_name']} {_fmt(c['peer'], c['unit'])}" + (
        "" if basis == report.MEASURED else " (whether measured: not recorded)" if basis is None else f" ({basis})"
    )
    ratio = "" if c["ratio"] is None else f"; ratio {report._fmt(c['ratio'])} ({c['better']} is better)"
    return [(f"{section['title']}: {c['metric']}", f"{_fmt(c['podbrief'], c['unit'])} vs {peer}{ratio}")]


def measured(section: dict[str, Any]) -> str:
    run = report.run_info(section)
    if run is None:
        return f"{section['date'][:16].replace('T', ' ')} UTC (load not recorded)"
    load = run["load"]
    state = (
        "quiet"
        if load["quiet"]
        else f"SHARED: other processes used {load['others_cores']:.2f} cores, steal {load['steal_pct']:.0f}%"
    )
    when = load["started_at"][:16].replace("T", " ")
    return f"{when} UTC, {load['wall_s']:,.0f} s, load avg {load['load1_mean']:.2f}, {state}"


def capacity_summary(results: Path) -> str:
    from bench import capacity

    try:
        model = capacity.compute(capacity.gather_inputs(capacity.Measured.load(results)))
    except Exception as exc:  # a section the model needs may be missing: say so rather than fail the run
        return f"The capacity model could not be computed from these results ({type(exc).__name__}: {exc})."
    fig, (t, x) = model.figures, model.kinds
    return (
        "[bench/CAPACITY.md](bench/CAPACITY.md) sizes the world's daily output "
        f"({report._fmt(fig['audio_h_day'])} audio hours a day) from these costs and published GPU figures: "
        f"{fig[f'trans_mean:{t}']:.0f} {t} on average ({fig[f'trans_peak:{t}']:.0f} at peak) for transcription, "
        f"{fig[f'extr_mean:{x}']:.0f} ({fig[f'extr_peak:{x}']:.0f}) {x} for an 8B extraction model, CPUs for the "
        f"rest, about ${fig['usd_audio_h_best']:.3f} per audio hour, and {fig['qdrant_points_year'] / 1e6:,.0f} "
        f"million Qdrant points ({fig['qdrant_ram_int8_gb']:,.0f} GB int8-quantised) after a year."
    )


def render(data: dict[str, Any], results: Path) -> str:
    sections = sorted(data["sections"].items(), key=lambda kv: (kv[1].get("order", 50), kv[0]))
    runs = sorted({r["run_id"] for _, s in sections if (r := report.run_info(s)) is not None})
    machines = sorted({f"{s['machine']['cpu']} ({s['machine']['cores']} cores)" for _, s in sections})
    shared = [k for k, s in sections if (r := report.run_info(s)) is not None and not r["load"]["quiet"]]
    alone = [k for k, s in sections if report.run_info(s) is None]
    lines = [
        f"From `make bench` run{'s' if len(runs) != 1 else ''} {', '.join(runs) or '(none recorded)'} on "
        f"{'; '.join(machines)}."
        + (f" Measured while other processes used the cores: {', '.join(shared)}." if shared else "")
        + (f" Start, end and machine load not recorded for: {', '.join(alone)}." if alone else ""),
        "",
        "| | figure | measured |",
        "| --- | --- | --- |",
    ]
    for _, s in sections:
        for what, figure in headline_rows(s):
            lines.append(f"| {what} | {figure} | {measured(s)} |")
    lines += ["", capacity_summary(results)]
    return "\n".join(lines) + "\n"


def write_readme(data: dict[str, Any], *, readme: Path = README, results: Path | None = None) -> None:
    write_section(readme, SECTION, render(data, results or report.DEFAULT_DIR / "results.json"), source=SOURCE)


def main() -> None:
    write_readme(report.load())


if __name__ == "__main__":
    main()
