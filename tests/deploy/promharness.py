"""A real Prometheus (the Debian package's binary) scraping podbrief processes, for tests: start it on a free
loopback port with the repo's alert rules, wait for targets, and run PromQL through its HTTP API.

The end-to-end pipeline test uses it the same way: point `targets` at the five running services, run the
pipeline, then assert that every dashboard query returns data (`dashboard_queries()` / `query()`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from podbrief_testing import free_port

ROOT = Path(__file__).resolve().parents[2]


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every target of every committed dashboard."""
    out = []
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            out += [(f"{path.name} / {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    return out


def alert_queries() -> list[tuple[str, str]]:
    doc = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    return [(f"alert {r['alert']}", r["expr"]) for g in doc["groups"] for r in g["rules"]]


def get(base: str, path: str, **params: str) -> dict[str, Any]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


def query(base: str, expr: str) -> dict[str, Any]:
    """The API's answer to an instant query: {"status": "success"|"error", "data"|"error": ...}."""
    return get(base, "/api/v1/query", query=expr)


@contextmanager
def prometheus(targets: dict[str, str], workdir: Path, *, interval_s: int = 1) -> Iterator[str]:
    """Run Prometheus scraping `targets` (service -> host:port, path /metrics/, job "podbrief", label service,
    as in deploy/prometheus/prometheus.yml) with the repo's alert rules; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus not on PATH; scripts/validate_deploy.sh --install installs it")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", workdir / "alerts.yml")
    config = {
        "global": {
            "scrape_interval": f"{interval_s}s",
            "evaluation_interval": f"{interval_s}s",
            "scrape_timeout": f"{interval_s}s",
        },
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": "podbrief",
                "metrics_path": "/metrics/",
                "static_configs": [{"targets": [addr], "labels": {"service": name}} for name, addr in targets.items()],
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("prometheus exited: " + (workdir / "prometheus.log").read_text()[-2000:])
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError("prometheus did not become ready in 60 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_for(base: str, expr: str, *, timeout_s: float) -> list[dict[str, Any]]:
    """Poll an instant query until it returns samples; the last result otherwise."""
    deadline = time.monotonic() + timeout_s
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = query(base, expr)
        result = answer.get("data", {}).get("result", [])
        if result:
            return result
        time.sleep(0.5)
    return result
