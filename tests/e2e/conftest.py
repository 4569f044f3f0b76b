"""The end-to-end suite's pipeline: the five services as OS processes on a real Kafka broker (a namespace of
their own) and PostgreSQL, scraped by a real Prometheus, and the steps every run takes through them."""

from __future__ import annotations

import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from podbrief_testing import ServiceProcess, SmtpSink, create_database, free_port, scrape_metric

sys.path.insert(0, str(Path(__file__).parents[1] / "deploy"))
import promharness

SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
Pipeline = tuple[dict[str, ServiceProcess], str, str]


def wait_for(cond: Callable[[], bool], what: str, timeout_s: float, procs: dict[str, ServiceProcess]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        for p in procs.values():
            if p.proc.poll() is not None:
                raise AssertionError(f"{p.name} died:\n{p.tail()}")
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in procs.values())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def namespace(unique: str) -> str:
    """This run's topics and consumer groups, apart from any other run's on the shared broker."""
    return f"e2e{unique}."


def sign_up_and_confirm(delivery: str, smtp_sink: SmtpSink, email: str, interests: str) -> tuple[dict[str, Any], str]:
    """A subscriber signs up and confirms through the link in the emailed confirmation: the confirmation's answer
    (subscriber id, API key, profile token) and the token from the link."""
    sent = len(smtp_sink.messages)
    r = httpx.post(delivery + "/v1/subscribers", json={"email": email, "interests": interests}, timeout=30)
    assert r.status_code == 202, r.text
    confirmation = smtp_sink.wait_for(sent + 1, timeout_s=30)[-1]
    body = confirmation.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    token = re.search(r"/confirm\?t=([\w.\-~%]+)", body)
    assert token, body
    r = httpx.post(delivery + "/v1/subscribers/confirm", json={"token": token.group(1)}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    return r.json(), token.group(1)


def wait_for_extraction(procs: dict[str, ServiceProcess], episodes: int, timeout_s: float = 600) -> None:
    """Until extraction has taken `episodes` transcripts, failing at once if transcription or extraction
    dead-letters a message."""
    extraction = procs["extraction"].base_url

    def extracted() -> bool:
        for name in ("transcription", "extraction"):
            dead = scrape_metric(procs[name].base_url, f"podbrief_{name}_dead_lettered_total")
            assert dead == 0, f"{name} dead-lettered a message:\n{procs[name].tail(5)}"
        topic = "podbrief.episode.transcribed.v1"
        return scrape_metric(extraction, "podbrief_extraction_messages_total", topic=topic) >= episodes

    wait_for(extracted, f"extraction of {episodes} episodes", timeout_s, procs)


def wait_for_delivery_pool(procs: dict[str, ServiceProcess], insights: int, timeout_s: float = 300) -> None:
    """Until delivery has taken `insights` clustered insights into its pool."""
    delivery = procs["delivery"].base_url
    wait_for(
        lambda: (
            scrape_metric(
                delivery, "podbrief_delivery_messages_total", topic="podbrief.insight.clustered.v1", status="ok"
            )
            >= insights
        ),
        "delivery to receive every clustered insight",
        timeout_s,
        procs,
    )


@pytest.fixture
def pipeline(tmp_path: Path, kafka_bootstrap: str, pg_url: str, smtp_sink: SmtpSink, unique: str) -> Iterator[Pipeline]:
    """The five services started and ready: (processes by name, the admin API key, Prometheus's URL)."""
    db_url = create_database(pg_url, f"e2e_{unique}")
    admin_key = secrets.token_urlsafe(16)
    ports = {name: free_port() for name in SERVICES}
    common = {
        "BUS__KIND": "kafka",
        "BUS__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BUS__KAFKA__NAMESPACE": namespace(unique),
        "DB__URL": db_url,
        "HTTP__ADMIN_API_KEY": admin_key,
        "LOG_LEVEL": "INFO",
    }
    extra = {
        "ingest": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]', "BACKFILL_LIMIT": "2"},
        "transcription": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]'},
        # Plumbing, not insight quality: the small packaged model (the default one is measured by
        # `make eval-extraction` and services/extraction/tests/test_real_model.py).
        "extraction": {"MODEL_PRESET": "tiny"},
        "clustering": {"QDRANT__PATH": str(tmp_path / "qdrant")},
        "delivery": {
            "SMTP__HOST": "127.0.0.1",
            "SMTP__PORT": str(smtp_sink.port),
            "SIGNING_SECRET": secrets.token_urlsafe(32),
            "SCHEDULER_ENABLED": "false",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['delivery']}",
            "CLUSTERING_URL": f"http://127.0.0.1:{ports['clustering']}",
        },
    }
    procs: dict[str, ServiceProcess] = {}
    artifacts = Path("test-artifacts/e2e")
    try:
        for name in SERVICES:
            env = {
                f"{name.upper()}_{k}": v for k, v in {**common, **extra[name], "DATA_DIR": str(tmp_path / name)}.items()
            }
            procs[name] = ServiceProcess(name, env, ports[name], artifacts).start()
        for p in procs.values():
            p.wait_ready(timeout_s=300)
        # A real Prometheus scrapes the five services for the whole run, as in production.
        targets = {name: f"127.0.0.1:{ports[name]}" for name in SERVICES}
        with promharness.prometheus(targets, tmp_path / "prometheus") as prom:
            yield procs, admin_key, prom
    finally:
        for p in procs.values():
            p.stop()
