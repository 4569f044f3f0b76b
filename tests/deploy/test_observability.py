"""Dashboards, alert rules and the Prometheus config: valid, parseable by Prometheus (promtool), and naming
only metrics that exist. "Exist" means: scraped from the five services' real /metrics (each app started with
an in-memory bus), or listed below with the reason it cannot be scraped here."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROMETHEUS = ROOT / "deploy" / "prometheus"
SERVICES = {"ingest": 8001, "transcription": 8002, "extraction": 8003, "clustering": 8004, "delivery": 8005}
METRIC = re.compile(r"\b(podbrief_[a-z0-9_]+|vllm:[a-z0-9_:]+)")
# Exported only on a CUDA machine (read through NVML at scrape time), so a CPU scrape cannot see them; a test
# below checks that the service's code still defines them.
GPU_ONLY = {
    "podbrief_transcription_gpu_memory_used_bytes": "services/transcription/metrics.py",
    "podbrief_transcription_gpu_memory_total_bytes": "services/transcription/metrics.py",
}
# vLLM's own metrics (https://docs.vllm.ai/en/stable/usage/metrics/), served by the pinned vllm/vllm-openai
# image. Not scrapeable here: vLLM needs a GPU.
VLLM = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:time_to_first_token_seconds_bucket",
    "vllm:e2e_request_latency_seconds_bucket",
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_queries_total",
}


def load(name: str, path: Path) -> Any:
    """A script of the repo (not a package) as a module; registered first, as dataclasses need."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def panel_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL) for every query in every dashboard."""
    return [
        (name, panel["title"], target["expr"])
        for name, board in dashboards().items()
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_dashboards_are_valid_json_with_unique_panel_ids_and_queries() -> None:
    boards = dashboards()
    assert set(boards) == {"pipeline.json", "transcription.json", "extraction.json", "delivery.json"}
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            pos = panel["gridPos"]
            assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24


def test_committed_dashboards_match_the_generator() -> None:
    generated = load("grafana_generate", ROOT / "deploy" / "grafana" / "generate.py").rendered()
    for name, text in generated.items():
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert committed == text, "run: python deploy/grafana/generate.py"


def test_the_issue_panels_exist() -> None:
    titles = {name: " / ".join(p["title"].lower() for p in b["panels"]) for name, b in dashboards().items()}
    for name, words in {
        "pipeline.json": ("episodes per stage per hour", "lag per consumer group", "dead-lettered", "p95"),
        "transcription.json": ("real-time factor", "audio hours", "gpu memory"),
        "extraction.json": ("tokens per second", "invalid-output", "vllm"),
        "delivery.json": ("sent", "failed", "bounces", "send latency"),
    }.items():
        for word in words:
            assert word in titles[name], f"{name}: no panel about {word!r}"


def test_services_export_the_bus_metrics(exported_metrics: dict[str, set[str]]) -> None:
    for service, names in exported_metrics.items():
        p = f"podbrief_{service}"
        assert {
            f"{p}_messages_total",
            f"{p}_handler_seconds_bucket",
            f"{p}_retries_total",
            f"{p}_dead_lettered_total",
            f"{p}_published_total",
            f"{p}_consumer_lag_messages",
            f"{p}_consumer_up",
        } <= names, service
        assert all(n.startswith(p + "_") for n in names if n.startswith("podbrief_")), service


def test_dashboards_and_alerts_use_only_exported_metrics(exported_metrics: dict[str, set[str]]) -> None:
    exported = set().union(*exported_metrics.values())
    unknown: list[str] = []
    for board, title, expr in panel_exprs():
        for metric in METRIC.findall(expr):
            if metric not in exported and metric not in GPU_ONLY and metric not in VLLM:
                unknown.append(f"{board} / {title}: {metric}")
    for rule in alert_rules():
        for metric in METRIC.findall(rule["expr"]):
            if metric not in exported:
                unknown.append(f"alert {rule['alert']}: {metric}")
    assert unknown == []


def test_gpu_only_metrics_are_still_defined_by_the_service() -> None:
    for metric, source in GPU_ONLY.items():
        assert f'"{metric}"' in (ROOT / source).read_text(encoding="utf-8"), f"{metric} gone from {source}"


def test_metrics_table_matches_what_the_services_export(scraped: dict[str, dict[str, Any]]) -> None:
    module = load("scrape_metrics", ROOT / "tests" / "deploy" / "scrape_metrics.py")
    rows = {s: [tuple(f) for f in scraped[s]["families"]] for s in SERVICES}
    expected = module.table(rows)
    assert (PROMETHEUS / "METRICS.md").read_text(encoding="utf-8") == expected, (
        "run: python tests/deploy/scrape_metrics.py --table > deploy/prometheus/METRICS.md"
    )


def test_promtool_accepts_the_alert_rules_and_the_config(promtool: Path) -> None:
    rules = subprocess.run(
        [str(promtool), "check", "rules", str(PROMETHEUS / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    config = subprocess.run(
        [str(promtool), "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_dashboard_query_parses_as_promql(promtool: Path, tmp_path: Path) -> None:
    # promtool parses each expression of a rule file; wrapping the panel queries as recording rules puts
    # Prometheus's own parser on every one of them.
    exprs = panel_exprs()
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"podbrief:dashboard_query_{i}", "expr": expr} for i, (_, _, expr) in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    proc = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout


def test_promtool_rejects_a_broken_query(promtool: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "x",
                        "rules": [
                            {"record": "podbrief:broken", "expr": "sum(rate(podbrief_ingest_messages_total[5m])"}
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0


def test_prometheus_scrapes_every_service_and_vllm() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", "podbrief", "vllm"}
    assert jobs["podbrief"]["metrics_path"] == "/metrics/"
    targets = {t["labels"]["service"]: t["targets"] for t in jobs["podbrief"]["static_configs"]}
    assert targets == {name: [f"{name}:{port}"] for name, port in SERVICES.items()}
    assert jobs["vllm"]["static_configs"][0]["targets"] == ["vllm:8000"]
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/podbrief.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    (ds,) = datasource["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    prom_mounts = {v.split(":")[1] for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml"} <= prom_mounts
