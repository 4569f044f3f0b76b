"""Start one service app in-process (in-memory bus, SQLite, Qdrant Edge under a temp dir), read its
/metrics, and print the sample names it exports as JSON. Run as a subprocess by test_observability.py, one
process per service so the five start in parallel and cannot share global state.

Usage: python tests/deploy/scrape_metrics.py <service> <tmpdir>
       python tests/deploy/scrape_metrics.py --table > deploy/prometheus/METRICS.md   (the doc table)"""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "info": ("_info",),
}


def test_env(service: str, tmp: Path) -> dict[str, str]:
    """Settings that let each app start here without its external dependencies (no model warm-up, no LLM)."""
    p = service.upper()
    env = {
        f"{p}_DATA_DIR": str(tmp),
        f"{p}_DB__URL": f"sqlite+aiosqlite:///{tmp}/{service}.db",
        f"{p}_BUS__KIND": "memory",
        f"{p}_HTTP__ADMIN_API_KEY": "deploy-test-admin-key",
    }
    extra = {
        "ingest": {"INGEST_POLL_ENABLED": "false"},
        "transcription": {"TRANSCRIPTION_WARMUP": "false", "TRANSCRIPTION_MODELS_DIR": str(tmp / "models")},
        # An unreachable endpoint: the app starts without llama-server; /metrics needs no LLM.
        "extraction": {"EXTRACTION_LLM__BASE_URL": "http://127.0.0.1:9/v1"},
        "clustering": {"CLUSTERING_QDRANT__PATH": str(tmp / "qdrant"), "CLUSTERING_RECLUSTER_INTERVAL_S": "0"},
        "delivery": {"DELIVERY_SIGNING_SECRET": "deploy-test-signing-secret-0123456789"},
    }
    env.update(extra.get(service, {}))
    return env


def families(exposition: str) -> list[tuple[str, str, str]]:
    """(name as queried, type, help) per metric family; counters are queried with their _total suffix."""
    from prometheus_client.parser import text_string_to_metric_families

    out = []
    for family in text_string_to_metric_families(exposition):
        # The text parser reports each counter's and histogram's `_created` samples as a gauge of their own.
        if family.name.endswith("_created") and family.type == "gauge":
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append((name, family.type, family.documentation))
    return sorted(out)


def sample_names(exposition: str) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
        names.update(s.name for s in family.samples)
    return names


def table(rows: dict[str, list[tuple[str, str, str]]]) -> str:
    """The metrics reference: one Markdown table of every podbrief_* family, grouped by service."""
    lines = [
        "# podbrief metrics",
        "",
        "Generated from each service's real `/metrics` by",
        "`python tests/deploy/scrape_metrics.py --table > deploy/prometheus/METRICS.md`;",
        "tests/deploy fails when it drifts. Label names: libs/podbrief/metrics.py (the bus metrics every",
        "service exports) and services/<name>/metrics.py.",
        "",
        "| Metric | Type | Service | Description |",
        "|---|---|---|---|",
    ]
    for service, fams in rows.items():
        lines += [
            f"| `{name}` | {kind} | {service} | {text.replace('|', '/')} |"
            for name, kind, text in fams
            if name.startswith("podbrief_")
        ]
    return "\n".join(lines) + "\n"


def exposition(service: str, tmp: Path) -> str:
    os.environ.update(test_env(service, tmp))
    os.chdir(tmp)
    from fastapi.testclient import TestClient
    from podbrief.bus import MemoryTransport

    app_mod = importlib.import_module(f"podbrief_{service}.app")
    client = TestClient(app_mod.create_app(transport=MemoryTransport()))
    # Startup runs the real lifespan (migrations, deps, consumer). Shutdown is skipped: the process exits
    # right after printing, and some apps take ~30 s to stop their background loops.
    client.__enter__()
    resp = client.get("/metrics/")
    resp.raise_for_status()
    return resp.text


def main(argv: list[str]) -> None:
    if argv[0] == "--table":
        import subprocess
        import tempfile

        rows: dict[str, list[tuple[str, str, str]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for service in ("ingest", "transcription", "extraction", "clustering", "delivery"):
                out = subprocess.run(
                    [sys.executable, __file__, service, f"{tmp}/{service}"], check=True, capture_output=True, text=True
                ).stdout.splitlines()[-1]
                rows[service] = [tuple(f) for f in json.loads(out)["families"]]
        sys.stdout.write(table(rows))
        return
    svc, tmpdir = argv[0], Path(argv[1])
    tmpdir.mkdir(parents=True, exist_ok=True)
    text = exposition(svc, tmpdir)
    result = {"service": svc, "metrics": sorted(sample_names(text)), "families": families(text)}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    # Skip interpreter shutdown (and the apps' slow lifespan exit) once the answer is out.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
