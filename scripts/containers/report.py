"""Writes the last `make test-containers` run into deploy/test-containers.json and the README's generated section
`test-containers` (podbrief.generated, as every tool that publishes figures), from what the run itself recorded under
test-artifacts/containers/ (phases.json from scripts/containers/run.sh, images.json from images.py, result.json
from tests/containers). A build that used podman's layer cache shows the last time the image was built from
scratch (images.py carries it over), so the table always shows what a cold build costs.

    .venv/bin/python scripts/containers/report.py [--artifacts test-artifacts/containers]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

from podbrief import host
from podbrief.generated import GeneratedSectionError, write_section

sys.path.insert(0, str(Path(__file__).parent))
from images import cold_build_s

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "deploy" / "test-containers.json"
README = ROOT / "README.md"
SECTION = "test-containers"
SOURCE = "`make test-containers` (scripts/containers/report.py)"
PHASES = (
    ("setup_s", "setup (packages, containers.conf, podman-compose)"),
    ("base_s", "Python base stand-in (debootstrap)"),
    ("images_s", "image builds (all)"),
    ("stack_s", "the stack's tests (up, smoke, checks, down)"),
    ("total_s", "total"),
)
STACK = (
    ("up_infrastructure_s", "`up` Kafka, PostgreSQL, SMTP sink, Prometheus, feeds"),
    ("infrastructure_healthy_s", "…until their health checks pass"),
    ("up_services_s", "`up` the five services"),
    ("services_healthy_s", "…until their health checks (/readyz) pass"),
    ("stop_s", "`stop` (SIGTERM, grace periods)"),
    ("down_s", "`down -v`"),
)


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def machine() -> str:
    return f"{host.usable_cores()} cores ({host.cpu_name()}), {platform.system()} {platform.release()}"


def merge(artifacts: Path, previous: dict[str, Any]) -> dict[str, Any]:
    phases, images, result = (load(artifacts / n) for n in ("phases.json", "images.json", "result.json"))
    old_images = previous.get("images", {})
    for tag, img in images.items():
        if img.get("cold_build_s") is None:
            img["cold_build_s"] = cold_build_s(img, old_images.get(tag, {}))
    tests = result.get("tests", {})
    passed = bool(tests) and all(t["outcome"] == "passed" for t in tests.values()) and phases.get("rc", 1) == 0
    return {
        "finished_at": result.get("finished_at") or phases.get("finished_at"),
        "machine": machine(),
        "outcome": "passed" if passed else "failed",
        "phases": phases,
        "images": images,
        "tests": tests,
        "stack": result.get("timings_s", {}),
        "healthy_after_s": result.get("healthy_after_s", {}),
        "smoke": result.get("smoke", {}),
        "exit_codes": result.get("exit_codes", {}),
    }


def fmt_s(value: Any) -> str:
    return "–" if value is None else f"{float(value):,.0f}"


def render(rec: dict[str, Any]) -> str:
    tests = rec["tests"]
    ok = sum(t["outcome"] == "passed" for t in tests.values())
    smoke = rec["smoke"]
    lines = [
        f"Last run: {rec['finished_at']}, {rec['machine']}: **{rec['outcome']}** ({ok}/{len(tests)} tests; "
        "written by `make test-containers`).",
        "",
        "| phase | seconds |",
        "| --- | --- |",
        *(f"| {label} | {fmt_s(rec['phases'].get(key))} |" for key, label in PHASES),
        *(f"| {label} | {fmt_s(rec['stack'].get(key))} |" for key, label in STACK),
    ]
    if smoke:
        lines += [
            f"| smoke: feed added → episode transcribed and extracted | {fmt_s(smoke.get('feed_to_extracted_s'))} |",
            f"| smoke: feed added → brief in the subscriber's mailbox | {fmt_s(smoke.get('feed_to_brief_s'))} |",
            f"| Prometheus: every service's target up | {fmt_s(smoke.get('prometheus_all_up_s'))} |",
            f"| Prometheus: the query over extraction's work answered | {fmt_s(smoke.get('prometheus_query_s'))} |",
            "",
            f"Smoke test: one episode of real speech (jfk.flac behind the real `pc20rss.xml` feed), extracted by "
            f"`{smoke.get('extraction', {}).get('model', '–')}`: {smoke.get('insights', '–')} insight(s), "
            f"{smoke.get('brief_items', '–')} item(s) in the brief received by the SMTP sink and served by the "
            "brief's JSON API.",
        ]
    lines += [
        "",
        "| image | stands in for | size MB | this run s | cold build s | user |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for tag, img in sorted(rec["images"].items(), key=lambda kv: (kv[1]["stands_in_for"] is not None, kv[0])):
        steps = f" ({img.get('steps_cached', '?')}/{img.get('steps', '?')} steps from cache)"
        cached = steps if img.get("cached") else ""
        lines.append(
            f"| `{tag}` | {img['stands_in_for'] or 'project image'} | {img['size_bytes'] / 1e6:,.0f} | "
            f"{fmt_s(img['seconds'])}{cached} | {fmt_s(img.get('cold_build_s'))} | {img['user']} |"
        )
    lines += ["", "| test | outcome | s |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {t['outcome']} | {fmt_s(t['seconds'])} |" for name, t in tests.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "test-artifacts" / "containers")
    args = parser.parse_args()
    rec = merge(args.artifacts, load(RECORD))
    RECORD.write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    try:
        write_section(README, SECTION, render(rec), source=SOURCE)
    except GeneratedSectionError as exc:
        sys.stderr.write(f"report: {README}: {exc}\n")
        return 1
    sys.stdout.write(render(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
