"""The five services as real processes (`podbrief serve`, in-memory bus, SQLite), scraped by a real Prometheus
with the repo's alert rules: every target is up on the configured path, every dashboard and alert expression is
accepted by Prometheus's query API, and every alert rule evaluates without error. That the panels return data
after a pipeline run is the end-to-end test's part (see promharness)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).parent))
import promharness  # noqa: E402
import scrape_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("serve")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, str] = {}
    try:
        for name in SERVICES:
            port = promharness.free_port()
            env = {
                **os.environ,
                **scrape_metrics.test_env(name, tmp / name),
                f"{name.upper()}_HTTP__PORT": str(port),
                f"{name.upper()}_HTTP__HOST": "127.0.0.1",
            }
            (tmp / name).mkdir()
            log = (tmp / f"{name}.log").open("wb")
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "podbrief_cli", "serve", name],
                env=env,
                cwd=tmp / name,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            targets[name] = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                if procs[name].poll() is not None:
                    pytest.fail(f"{name} exited: {(tmp / f'{name}.log').read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://{targets[name]}/healthz", timeout=2):
                        pending.discard(name)
                except OSError:
                    pass
            time.sleep(0.5)
        assert not pending, f"not serving after 240 s: {pending}"
        yield targets
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_real_prometheus_scrapes_the_services_and_accepts_every_query(
    services: dict[str, str], tmp_path: Path
) -> None:
    with promharness.prometheus(services, tmp_path / "prometheus") as base:
        up = promharness.wait_for(base, 'count(up{job="podbrief"} == 1) == 5', timeout_s=60)
        assert up, promharness.query(base, 'up{job="podbrief"}')
        # The bus metrics arrive with the `service` label the alert rules group by.
        consumers = promharness.wait_for(
            base, 'count by (service) ({__name__=~"podbrief_.+_consumer_up"})', timeout_s=30
        )
        assert {r["metric"]["service"] for r in consumers} == set(SERVICES)
        errors = []
        for where, expr in promharness.dashboard_queries() + promharness.alert_queries():
            answer = promharness.query(base, expr)
            if answer["status"] != "success":
                errors.append(f"{where}: {answer.get('error')}")
        assert errors == []
        assert promharness.query(base, "sum(rate(podbrief_ingest_messages_total[5m])")["status"] == "error"
        time.sleep(3)  # a few rule evaluations
        rules = promharness.get(base, "/api/v1/rules")["data"]["groups"]
        evaluated = [r for g in rules for r in g["rules"]]
        assert len(evaluated) == len(promharness.alert_queries())
        assert [(r["name"], r.get("lastError")) for r in evaluated if r["health"] != "ok"] == []
