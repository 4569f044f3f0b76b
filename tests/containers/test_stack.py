"""The images and the compose stack, run for real with podman (`make test-containers`): every container healthy
and ready, each service listening exactly where compose, Kubernetes and Prometheus say, a real podcast feed turned
into a brief in a subscriber's mailbox and in the brief's JSON API, Prometheus scraping every service, the
containers read-only, non-root and without capabilities, and a clean `down`."""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import re
import shutil
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from podbrief.events.ids import episode_id
from podbrief_extraction.model_install import QWEN_CODER_1_5B, models_dir
from podbrief_testing import scrape_metric

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "deploy"))
import endpoints
from stack import PODBRIEF, PROJECT, ROOT, Stack, run

pytestmark = pytest.mark.containers

# podbrief service -> the compose service running it in the cpu profile.
COMPOSE_NAME = endpoints.PROFILES["cpu"][1]
EXTRACTION_IMAGE_LIMIT = 1_500_000_000
JFK_WORDS = {"country", "americans", "ask"}


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float, stack: Stack, step_s: float = 3) -> float:
    """Seconds until `cond` held; fails with the podbrief containers' last log lines."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if cond():
            return round(time.monotonic() - started, 1)
        for name in PODBRIEF:
            assert stack.running(name), f"{name} stopped:\n{stack.logs_of(name)}"
        time.sleep(step_s)
    logs = "\n".join(f"--- {n}\n{stack.logs_of(n, 15)}" for n in PODBRIEF)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs}")


def port_of(service: str) -> int:
    _, port = endpoints.bound_address(service, endpoints.compose_env(endpoints.load_compose(), COMPOSE_NAME[service]))
    return port


def listening(stack: Stack, compose_name: str) -> dict[int, set[str]]:
    """TCP ports the container listens on, with the addresses, from its own /proc/net/tcp and tcp6."""
    out = run(["podman", "exec", stack.container(compose_name), "cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout
    found: dict[int, set[str]] = {}
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # LISTEN
            address, port = fields[1].split(":")
            found.setdefault(int(port, 16), set()).add("any" if set(address) == {"0"} else address)
    return found


def maildir(stack: Stack) -> Path:
    volume = f"{PROJECT}_mailpit-data"
    mount = run(["podman", "volume", "inspect", volume, "--format", "{{.Mountpoint}}"]).stdout.strip()
    return Path(mount) / "maildir"


def mails(stack: Stack) -> list[EmailMessage]:
    box = mailbox.Maildir(maildir(stack), factory=None, create=False)
    messages = [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]
    return sorted((m for m in messages if isinstance(m, EmailMessage)), key=lambda m: str(m["Date"]))


def text_of(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body(preferencelist=(kind,))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def test_images_are_non_root_have_a_health_check_and_the_extraction_image_is_slim(
    stack: Stack, result: dict[str, Any]
) -> None:
    derived = yaml.safe_load(stack.compose_file.read_text(encoding="utf-8"))
    sizes: dict[str, int] = {}
    for name, svc in derived["services"].items():
        if "cpu" not in svc.get("profiles", ["cpu"]):
            continue
        info = json.loads(run(["podman", "image", "inspect", svc["image"]]).stdout)[0]
        user = (info["Config"].get("User") or "root").split(":")[0]
        if name != "feeds":  # the test's own file server runs as nobody through the compose file
            assert user not in {"", "0", "root"}, f"{svc['image']} runs as root"
            assert info.get("Healthcheck"), f"{svc['image']}: no HEALTHCHECK"
        sizes[svc["image"]] = int(info["Size"])
    result["image_sizes_bytes"] = sizes
    # The extraction image is the service image plus llama-server: no toolchain from the llama-server build and no
    # default model (installed into the volume on first start) are in it.
    extraction = derived["services"]["extraction-cpu"]["image"]
    tools = "for t in cc gcc c++ g++ cmake make ld; do command -v $t; done"
    models = f"find / -xdev -name '{QWEN_CODER_1_5B.file_name}'"
    out = run(["podman", "run", "--rm", "--entrypoint", "sh", extraction, "-c", f"{tools}; {models}; true"]).stdout
    assert out.split() == [], f"{extraction} carries a toolchain or the default model: {out.split()}"
    assert sizes[extraction] < EXTRACTION_IMAGE_LIMIT, f"{extraction} is {sizes[extraction] / 1e9:.2f} GB"


def test_the_default_model_comes_from_the_volume(stack: Stack, result: dict[str, Any]) -> None:
    """The default preset looks for its model in the extraction volume (where its first start installs it), and a
    directory holding it mounted there is used as it is: no network, read-only, nothing downloaded."""
    container = stack.container("extraction-cpu")
    probe = (
        "from podbrief_extraction.settings import ExtractionSettings as S; print(S(model_preset='qwen1.5b').llama.gguf)"
    )
    where = run(["podman", "exec", container, "python", "-c", probe]).stdout.strip()
    assert where == f"/data/models/{QWEN_CODER_1_5B.file_name}", where
    writable = run(["podman", "exec", container, "sh", "-c", "mkdir -p /data/models && test -w /data/models"])
    assert writable.returncode == 0, writable.stderr
    host = models_dir() / QWEN_CODER_1_5B.file_name
    assert host.is_file(), f"{host} missing: `make install` installs the default model"
    image = stack.inspect("extraction-cpu")["ImageName"]
    mounted = run(
        ["podman", "run", "--rm", "--network", "none", "--read-only", "-v", f"{host.parent}:/data/models:ro",
         image, "extraction", "fetch-model"]
    )  # fmt: skip
    assert mounted.stdout.strip() == f"/data/models/{QWEN_CODER_1_5B.file_name}", mounted.stdout + mounted.stderr


def test_every_container_is_healthy_and_ready(stack: Stack, result: dict[str, Any]) -> None:
    for name in (*PODBRIEF, "kafka", "postgres", "mailpit", "prometheus", "feeds"):
        assert stack.healthy(name), f"{name}: health check fails\n{stack.logs_of(name)}"
    for service, compose_name in COMPOSE_NAME.items():
        base = stack.base_url(compose_name, port_of(service))
        for path in ("/healthz", "/readyz"):
            r = httpx.get(base + path, timeout=10)
            assert r.status_code == 200, f"{service} {path}: {r.status_code} {r.text}"


def test_each_service_listens_where_compose_kubernetes_and_prometheus_say(stack: Stack, result: dict[str, Any]) -> None:
    kustomize = ROOT / ".cache" / "bin" / "kustomize"
    if not kustomize.is_file():
        found = shutil.which("kustomize")
        assert found, "kustomize not found; scripts/validate_deploy.sh --install installs it"
        kustomize = Path(found)
    docs = endpoints.render_overlay(kustomize, "dev")
    targets = endpoints.prometheus_targets()
    seen: dict[str, int] = {}
    for service, compose_name in COMPOSE_NAME.items():
        ports = listening(stack, compose_name)
        wildcard = sorted(p for p, addresses in ports.items() if "any" in addresses)
        k8s = endpoints.k8s_endpoints(docs, service)
        # Exactly one port open to the network, and it is the one every artefact names.
        assert wildcard == [k8s.container_port], f"{service} listens on {ports}, k8s says {k8s.container_port}"
        assert targets[service][1] == k8s.container_port == k8s.service_target_port
        base = stack.base_url(compose_name, wildcard[0])
        for kind, probe in k8s.probes.items():
            r = httpx.get(f"http://{stack.ip(compose_name)}:{probe.port}{probe.path}", timeout=10)
            assert r.status_code == 200, f"{service} {kind} {probe.path}: {r.status_code}"
        r = httpx.get(base + k8s.monitor_path, timeout=10)
        assert r.status_code == 200 and f"podbrief_{service}_" in r.text
        seen[service] = wildcard[0]
    result["listening"] = seen


def test_a_feed_becomes_a_brief_through_the_containers(stack: Stack, result: dict[str, Any]) -> None:
    admin = {"X-API-Key": stack.env["PODBRIEF_ADMIN_API_KEY"]}
    delivery = stack.base_url("delivery", port_of("delivery"))
    ingest = stack.base_url("ingest", port_of("ingest"))
    extraction = stack.base_url("extraction-cpu", port_of("extraction"))
    smoke = result["smoke"]
    started = time.monotonic()

    # A subscriber signs up and confirms through the link in the email the SMTP sink received.
    r = httpx.post(
        delivery + "/v1/subscribers",
        json={"email": "reader@example.org", "interests": "patriotism, citizenship and public service"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    wait_until(lambda: len(mails(stack)) >= 1, "the confirmation email", 60, stack, step_s=1)
    token = re.search(r"/confirm\?t=([\w.\-~%]+)", text_of(mails(stack)[0]))
    assert token, text_of(mails(stack)[0])
    r = httpx.post(delivery + "/v1/subscribers/confirm", json={"token": token.group(1)}, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    subscriber = r.json()

    # The feed goes in through ingest's API; everything after that happens over Kafka between the containers.
    feed_started = time.monotonic()
    r = httpx.post(ingest + "/v1/feeds", json={"url": stack.feed_url}, headers=admin, timeout=60)
    assert r.status_code == 201, r.text
    episode = episode_id(stack.feed_url, stack.guids[0])

    def extracted() -> bool:
        for name, compose_name in (("transcription", "transcription"), ("extraction", "extraction-cpu")):
            base = stack.base_url(compose_name, port_of(name))
            assert scrape_metric(base, f"podbrief_{name}_dead_lettered_total") == 0, stack.logs_of(compose_name)
        r = httpx.get(f"{extraction}/v1/episodes/{episode}", timeout=10)
        return r.status_code == 200 and r.json()["status"] in ("done", "skipped", "error")

    smoke["feed_to_extracted_s"] = wait_until(extracted, "the episode's extraction", 900, stack)
    status = httpx.get(f"{extraction}/v1/episodes/{episode}", timeout=10).json()
    assert status["status"] == "done", status
    smoke["extraction"] = {k: status[k] for k in ("model", "prompt_version", "chunks_total", "insights_kept")}
    insights = httpx.get(f"{extraction}/v1/episodes/{episode}/insights", timeout=10).json()["insights"]
    assert insights, "no insight kept from the JFK speech"
    smoke["insights"] = len(insights)
    wait_until(
        lambda: (
            scrape_metric(
                delivery, "podbrief_delivery_messages_total", topic="podbrief.insight.clustered.v1", status="ok"
            )
            >= len(insights)
        ),
        "delivery to receive every clustered insight",
        300,
        stack,
    )

    r = httpx.post(delivery + "/v1/admin/deliveries/run", json={"force": True}, headers=admin, timeout=300)
    assert r.status_code == 200 and r.json()["sent"] == 1, r.text
    wait_until(lambda: len(mails(stack)) >= 2, "the brief email", 60, stack, step_s=1)
    smoke["feed_to_brief_s"] = round(time.monotonic() - feed_started, 1)
    brief = mails(stack)[-1]
    assert brief["To"] == "reader@example.org"
    text, html = text_of(brief), text_of(brief, "html")
    assert any(w in text.lower() for w in JFK_WORDS), text
    assert any(i["quote"].lower()[:30] in text.lower() for i in insights), text
    assert re.search(r"#t=\d+", html), "no timestamp link in the brief"

    # The same brief through its JSON API, with the subscriber's own key.
    r = httpx.get(
        f"{delivery}/v1/subscribers/{subscriber['subscriber_id']}/briefs/latest",
        headers={"Authorization": f"Bearer {subscriber['api_key']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and any(w in json.dumps(items).lower() for w in JFK_WORDS)
    smoke["brief_items"] = len(items)
    smoke["total_s"] = round(time.monotonic() - started, 1)


def test_prometheus_scrapes_every_service(stack: Stack, result: dict[str, Any]) -> None:
    prometheus = stack.base_url("prometheus", 9090)
    expected = {s: port_of(s) for s in COMPOSE_NAME}

    def all_up() -> bool:
        targets = httpx.get(prometheus + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        podbrief = {t["labels"]["service"]: t for t in targets if t["labels"].get("job") == "podbrief"}
        return set(podbrief) == set(expected) and all(t["health"] == "up" for t in podbrief.values())

    result["smoke"]["prometheus_all_up_s"] = wait_until(all_up, "Prometheus to scrape all five services", 120, stack)
    targets = httpx.get(prometheus + "/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    for t in targets:
        if t["labels"].get("job") == "podbrief":
            assert t["scrapeUrl"].endswith(f":{expected[t['labels']['service']]}/metrics/"), t["scrapeUrl"]
    # The smoke test's work is visible through Prometheus, as a dashboard would query it: the episode extraction
    # handled. A labelled counter has no series until it is first incremented, so this needs the smoke test to
    # have run (it runs first); the answer must reach what the service itself reports once a scrape (every 15 s)
    # has happened since.
    extraction = stack.base_url("extraction-cpu", port_of("extraction"))
    handled = scrape_metric(extraction, "podbrief_extraction_messages_total", status="ok")
    assert handled >= 1, "extraction handled no message: the feed-to-brief smoke test did not get that far"
    query = 'sum(podbrief_extraction_messages_total{job="podbrief", service="extraction", status="ok"})'

    def answered() -> bool:
        r = httpx.get(prometheus + "/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
        return bool(r) and float(r[0]["value"][1]) >= handled

    result["smoke"]["prometheus_query_s"] = wait_until(answered, f"Prometheus to answer {query}", 60, stack)


def test_the_podbrief_containers_are_read_only_non_root_and_without_capabilities(stack: Stack) -> None:
    for name in PODBRIEF:
        info = stack.inspect(name)
        assert info["HostConfig"]["ReadonlyRootfs"] is True, name
        assert info["Config"]["User"].split(":")[0] == "10001", name
        assert "no-new-privileges" in " ".join(info["HostConfig"].get("SecurityOpt") or []), name
        assert info["EffectiveCaps"] in (None, []), f"{name} keeps {info['EffectiveCaps']}"
        assert run(["podman", "exec", stack.container(name), "id", "-u"]).stdout.strip() == "10001"
        write = run(["podman", "exec", stack.container(name), "touch", "/app/probe"], check=False)
        assert write.returncode != 0 and "Read-only" in write.stderr, f"{name}: {write.stderr}"
        # Only the volume and /tmp take writes.
        assert run(["podman", "exec", stack.container(name), "touch", "/data/probe", "/tmp/probe"]).returncode == 0


def test_down_stops_every_container_cleanly_and_leaves_nothing(stack: Stack, result: dict[str, Any]) -> None:
    exits = stack.down()
    result["exit_codes"] = exits
    assert {name: exits.get(name) for name in PODBRIEF} == dict.fromkeys(PODBRIEF, 0), exits
    assert stack.leftovers() == []
