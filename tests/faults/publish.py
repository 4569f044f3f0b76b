"""The fault suite's figures in README.md, written by the suite that measured them (podbrief.generated): the fault
injection table and the back-pressure figures, each beside its bounds. `make test-faults` publishes
(PODBRIEF_PUBLISH=1) at the end of a passing run, from what that run recorded under test-artifacts/faults; the
table only from a complete run (a run filtered down to some scenarios leaves it alone). By hand, from the
artifacts of an earlier run (say, a CI run's):

    python tests/faults/publish.py [test-artifacts/faults]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from podbrief.generated import write_section

README = Path(__file__).resolve().parents[2] / "README.md"
SOURCE = "`make test-faults` (tests/faults/publish.py)"
PUBLISH_ENV = "PODBRIEF_PUBLISH"


def requested() -> bool:
    return os.environ.get(PUBLISH_ENV) == "1"


def _machine(load: dict[str, Any] | None) -> str:
    if not load:
        return "machine load not recorded"
    state = "quiet" if load["quiet"] else f"shared: other processes used {load['others_cores']:.2f} cores"
    return (
        f"{load['started_at']} → {load['ended_at']}, load average {load['load1_min']:.1f}–{load['load1_max']:.1f} "
        f"(mean {load['load1_mean']:.1f}) on {load['cores']} cores, {state}"
    )


def faults_body(results: dict[str, Any]) -> str:
    import faultkit

    rows = [faultkit.Row(**r) for r in results["rows"]]
    m = results["machine"]
    return (
        f"Last run: {m['cpu']} ({m['cores']} cores), {_machine(results['load'])}; suite wall time "
        f"{results['wall_s']:,.0f} s.\n\n{faultkit.results_table(rows)}\n"
    )


def backpressure_body(data: dict[str, Any]) -> str:
    """The back-pressure figures: lag, RSS after 100 and after 1,000 queued messages, and the bounds the test
    asserts, side by side (a bound is a ceiling the test enforces, not a measurement)."""
    t, i, b = data["transcription"], data["ingest"], data["bounds"]
    x = data.get("extraction_large_messages")
    text = (
        f"While ingest discovered {data['flood']:,} episodes and transcription took one at a time, the consumer "
        f"group's lag rose from {data['lag_after_100']:,} to {data['lag_after_1000']:,} ({data['recorded_at']}). "
        "RSS, the most seen after 100 queued and after 1,000 queued, against the bounds the test asserts:\n\n"
        "| process | after 100 MB | after 1,000 MB | growth MB | growth bound MB | peak MB | peak bound MB |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
        f"| ingest | {i['after_100_max_mb']} | {i['after_1000_max_mb']} "
        f"| {i['after_1000_max_mb'] - i['after_100_max_mb']:+.1f} | < {b['growth_100_to_1000_mb']:g} "
        f"| {i['peak_mb']} | < {b['ingest_peak_mb']:g} |\n"
        f"| transcription | {t['after_100_max_mb']} | {t['after_1000_max_mb']} "
        f"| {t['after_1000_max_mb'] - t['after_100_max_mb']:+.1f} | < {b['transcription_growth_100_to_1000_mb']:g} "
        f"| {t['peak_mb']} | < {b['transcription_peak_mb']:g} |\n"
    )
    if x:
        e = x["extraction"]
        text += (
            f"| extraction ({x['backlog_mb']:g} MB of large transcripts queued behind a slow LLM; lag "
            f"{x['lag_after_1000']:,}) | {e['after_100_max_mb']} | {e['after_1000_max_mb']} "
            f"| {e['after_1000_max_mb'] - e['after_100_max_mb']:+.1f} | < {b['growth_100_to_1000_mb']:g} "
            f"| {e['peak_mb']} | – |\n"
        )
    return text


def shutdown_body(data: dict[str, Any]) -> str:
    """One row per shutdown scenario: the drain timeout, the bound the test asserts, and the measured exit."""
    dates = sorted(v["recorded_at"] for v in data.values())
    lines = [
        f"Recorded {dates[0]} → {dates[-1]}:",
        "",
        "| scenario | drain timeout s | exit bound s | exit code | seconds to exit | what was in flight |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, v in sorted(data.items(), key=lambda kv: (kv[1]["service"], kv[0])):
        lines.append(
            f"| {name} | {v['shutdown_timeout_s']:g} | {v['bound_s']:g} | {v['exit_code']} "
            f"| {v['seconds_to_exit']:.1f} | {v['in_flight']} |"
        )
    return "\n".join(lines) + "\n"


def write(name: str, body: str) -> None:
    write_section(README, name, body, source=SOURCE)


def from_artifacts(artifacts: Path, *, since: str = "", shutdown: bool = True) -> list[str]:
    """Writes what `artifacts` holds that is fit to publish (recorded at or after `since`); returns the names of
    the sections written and says why any was not."""
    written: list[str] = []
    path = artifacts / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if not results or results.get("recorded_at", "") < since:
        print(f"publish: no fault table recorded in {path} since {since or 'ever'}")  # noqa: T201
    elif not results.get("complete"):
        print(f"publish: {path} is from a run that did not run every scenario; README's table left alone")  # noqa: T201
    elif any(r["note"].startswith("FAILED") for r in results["rows"]):
        print(f"publish: {path} has failed scenarios; README's table left alone")  # noqa: T201
    else:
        write("faults", faults_body(results))
        written.append("faults")
    path = artifacts / "backpressure.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    large = data.get("extraction_large_messages", {})
    if data.get("recorded_at", "") >= since and large.get("recorded_at", "") >= since and "flood" in data:
        write("backpressure", backpressure_body(data))
        written.append("backpressure")
    else:
        print(f"publish: {path} lacks one of the two back-pressure runs since {since or 'ever'}")  # noqa: T201
    path = artifacts / "shutdown.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    fresh = {k: v for k, v in data.items() if v.get("recorded_at", "") >= since and "bound_s" in v}
    if shutdown and fresh:
        write("shutdown", shutdown_body(fresh))
        written.append("shutdown")
    else:
        print(f"publish: no shutdown scenario to publish from {path} since {since or 'ever'}")  # noqa: T201
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    done = from_artifacts(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("test-artifacts/faults"))
    print(f"README.md: wrote {', '.join(done) or 'nothing'}")  # noqa: T201
