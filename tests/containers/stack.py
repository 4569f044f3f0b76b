"""docker-compose.yml brought up with podman-compose, as `make test-containers` runs it on a machine that cannot
pull from Docker Hub.

The compose file is used as written, with these changes, each made here in code so the list is complete:

- images this machine cannot pull are replaced by the stand-ins built from deploy/standins/ (Kafka, PostgreSQL,
  Prometheus, an SMTP sink for mailpit); mailpit's health check (`/mailpit readyz`) and web port go with it, the
  stand-in checks its SMTP port instead;
- Qdrant runs embedded in clustering (Qdrant Edge, under CLUSTERING_DATA_DIR: the clustering volume) instead
  of as a server, and Grafana is left out: neither image can be pulled nor made from Debian's packages;
- published host ports move into a range of their own (18001, 18005, 18090) so a run does not collide with other
  programs on the machine; the ports inside the containers are the documented ones;
- a `feeds` container serves the test's podcast feed and audio on the compose network, and ingest and
  transcription may fetch from it (their SSRF guard refuses private addresses unless allowed);
- for a deterministic smoke test: ingest takes only the newest episode of a new feed, delivery's scheduler is off
  (the test triggers the day's run through the admin API);
- extraction runs the tiny preset (the packaged SmolLM2-135M), as the e2e test does: the smoke test checks the
  plumbing, and the default model is not in the image (its first start would download 1.1 GB into the volume;
  test_the_default_model_comes_from_the_volume checks where it is looked for, and that a mounted one is used);
- relative bind mounts become absolute, since the derived file lives under test-artifacts/.

podman-compose 1.6.0 ignores `condition: service_healthy` (it only orders container starts), and without systemd
podman does not run health checks by itself: `up()` starts the infrastructure first, runs `podman healthcheck run`
until it passes, then starts the rest and waits for every health check the same way."""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PODMAN_COMPOSE = ROOT / ".cache" / "containers" / "venv" / "bin" / "podman-compose"
PROJECT = "podbrief-ct"
PROFILE = "cpu"
PODBRIEF = ("ingest", "transcription", "extraction-cpu", "clustering", "delivery")
INFRASTRUCTURE = ("kafka", "postgres", "mailpit", "prometheus", "feeds")
HOST_PORTS = {8001: 18001, 8005: 18005, 9090: 18090}
LEFT_OUT = {
    "qdrant": "qdrant/qdrant cannot be pulled here; clustering embeds Qdrant Edge on its volume",
    "grafana": "grafana/grafana cannot be pulled and Debian has no Grafana package; the dashboards' queries are "
    "checked against a real Prometheus in tests/deploy",
}
FEEDS_PORT = 8080


def standin_tags() -> dict[str, str]:
    """Compose service -> the stand-in image built by scripts/containers/images.py."""
    versions = dict(
        re.findall(
            r"<(kafka)\.version>([^<]+)</",
            (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text(encoding="utf-8"),
        )
    )
    return {
        "kafka": f"localhost/podbrief/kafka-standin:{versions['kafka']}",
        "postgres": "localhost/podbrief/postgres-standin:15-bookworm",
        "prometheus": "localhost/podbrief/prometheus-standin:2.42-bookworm",
        "mailpit": "localhost/podbrief/smtp-standin:aiosmtpd-bookworm",
    }


BASE_IMAGE = os.environ.get("BASE_STANDIN_IMAGE", "localhost/podbrief/python-standin:3.11-bookworm")


def _env(svc: dict[str, Any]) -> dict[str, Any]:
    env = svc.setdefault("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
        svc["environment"] = env
    assert isinstance(env, dict)
    return env


def derive(compose: dict[str, Any], feeds_dir: Path) -> dict[str, Any]:
    """The compose file as this machine can run it (see the module docstring for every change)."""
    out = copy.deepcopy(compose)
    services: dict[str, Any] = out["services"]
    for name in LEFT_OUT:
        services.pop(name, None)
        out.get("volumes", {}).pop(f"{name}-data", None)
    for svc in services.values():
        deps = svc.get("depends_on")
        if isinstance(deps, dict):
            for name in LEFT_OUT:
                deps.pop(name, None)
        elif isinstance(deps, list):
            svc["depends_on"] = [d for d in deps if d not in LEFT_OUT]
        svc["ports"] = [_remap(p) for p in svc.get("ports", [])]
        if not svc["ports"]:
            del svc["ports"]
        for i, vol in enumerate(svc.get("volumes", [])):
            if isinstance(vol, str) and vol.startswith("./"):
                svc["volumes"][i] = str(ROOT / vol[2:])
        if isinstance(svc.get("build"), dict):
            svc["build"]["context"] = str((ROOT / svc["build"].get("context", ".")).resolve())
    for name, tag in standin_tags().items():
        services[name]["image"] = tag
    mailpit = services["mailpit"]
    mailpit.pop("healthcheck", None)
    mailpit.pop("ports", None)
    mailpit["environment"] = {}

    clustering = _env(services["clustering"])
    clustering.pop("CLUSTERING_QDRANT__URL", None)
    clustering.pop("CLUSTERING_QDRANT__API_KEY", None)
    allowed = json.dumps(["feeds"])
    _env(services["ingest"]).update({"INGEST_NET__ALLOWED_NETWORKS": allowed, "INGEST_BACKFILL_LIMIT": "1"})
    _env(services["transcription"])["TRANSCRIPTION_NET__ALLOWED_NETWORKS"] = allowed
    _env(services["delivery"])["DELIVERY_SCHEDULER_ENABLED"] = "false"
    _env(services["extraction-cpu"])["EXTRACTION_MODEL_PRESET"] = "tiny"
    services["feeds"] = {
        "image": BASE_IMAGE,
        "read_only": True,
        "user": "65534:65534",
        "command": ["python3", "-m", "http.server", str(FEEDS_PORT), "--directory", "/srv/feeds"],
        # PID 1 ignores SIGTERM without a handler; http.server exits 0 on SIGINT.
        "stop_signal": "SIGINT",
        "volumes": [f"{feeds_dir}:/srv/feeds:ro"],
        "healthcheck": {
            "test": ["CMD", "python3", "-c", f"import urllib.request as u; u.urlopen('http://127.0.0.1:{FEEDS_PORT}/')"],
            "interval": "5s",
            "timeout": "5s",
            "retries": 10,
        },
    }  # fmt: skip
    return out


def _remap(port: Any) -> Any:
    """'127.0.0.1:8001:8001' -> '127.0.0.1:18001:8001'."""
    if not isinstance(port, str):
        return port
    parts = port.split(":")
    host = int(parts[-2]) if len(parts) >= 2 else None
    if host in HOST_PORTS:
        parts[-2] = str(HOST_PORTS[host])
    return ":".join(parts)


def env_file(example: Path, dest: Path) -> dict[str, str]:
    """.env.example with every placeholder secret replaced by a random one."""
    values: dict[str, str] = {}
    for line in example.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        values[key] = f"ct-{secrets.token_urlsafe(24)}" if "change-me" in value else value
    dest.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return values


def run(cmd: list[str], *, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@dataclass
class Stack:
    compose_file: Path
    env_path: Path
    env: dict[str, str]
    logs: Path
    timings: dict[str, float] = field(default_factory=dict)
    # The test feed as the containers reach it, and the guids of its items with speech.
    feed_url: str = ""
    guids: list[str] = field(default_factory=list)

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        cmd = [str(PODMAN_COMPOSE), "-p", PROJECT, "-f", str(self.compose_file), "--env-file", str(self.env_path)]
        cmd += ["--profile", PROFILE, *args]
        proc = run(cmd, timeout=timeout, check=False)
        with (self.logs / "podman-compose.log").open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
        if proc.returncode != 0:
            raise RuntimeError(f"podman-compose {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def container(self, service: str) -> str:
        return f"{PROJECT}_{service}_1"

    def containers(self) -> list[dict[str, Any]]:
        out = run(["podman", "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "json"])
        found: list[dict[str, Any]] = json.loads(out.stdout or "[]")
        return found

    def inspect(self, service: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(run(["podman", "inspect", self.container(service)]).stdout)[0]
        return data

    def ip(self, service: str) -> str:
        networks = self.inspect(service)["NetworkSettings"]["Networks"]
        (net,) = networks.values()
        return str(net["IPAddress"])

    def base_url(self, service: str, port: int) -> str:
        """How this host reaches a service: its published port when it has one, else the container's address
        on the compose network (rootful podman routes the bridge's subnet to the host)."""
        if port in HOST_PORTS:
            return f"http://127.0.0.1:{HOST_PORTS[port]}"
        return f"http://{self.ip(service)}:{port}"

    def healthy(self, service: str) -> bool:
        return run(["podman", "healthcheck", "run", self.container(service)], check=False, timeout=120).returncode == 0

    def running(self, service: str) -> bool:
        state = self.inspect(service)["State"]
        return bool(state["Running"])

    def logs_of(self, service: str, tail: int = 40) -> str:
        proc = run(["podman", "logs", "--tail", str(tail), self.container(service)], check=False)
        return proc.stdout + proc.stderr

    def wait_healthy(self, services: Iterable[str], timeout_s: float) -> dict[str, float]:
        """Runs each container's health check until it passes; seconds until each was healthy."""
        started = time.monotonic()
        waiting = list(services)
        took: dict[str, float] = {}
        while waiting:
            for service in list(waiting):
                if self.healthy(service):
                    took[service] = round(time.monotonic() - started, 1)
                    waiting.remove(service)
            if waiting and time.monotonic() - started > timeout_s:
                logs = "\n".join(f"--- {s}\n{self.logs_of(s)}" for s in waiting)
                raise AssertionError(f"not healthy after {timeout_s:.0f} s: {', '.join(waiting)}\n{logs}")
            if waiting:
                time.sleep(3)
        return took

    def timed(self, name: str, action: Callable[[], Any]) -> Any:
        started = time.monotonic()
        try:
            return action()
        finally:
            self.timings[name] = round(time.monotonic() - started, 1)

    def up(self) -> dict[str, float]:
        self.timed("up_infrastructure_s", lambda: self.compose("up", "-d", *INFRASTRUCTURE))
        health = self.timed("infrastructure_healthy_s", lambda: self.wait_healthy(INFRASTRUCTURE, 300))
        self.timed("up_services_s", lambda: self.compose("up", "-d"))
        health.update(self.timed("services_healthy_s", lambda: self.wait_healthy(PODBRIEF, 600)))
        return health

    def down(self) -> dict[str, Any]:
        """Stops every container (SIGTERM, the compose file's grace periods), records exit codes, then removes
        containers, pod, network and volumes."""
        self.timed("stop_s", lambda: self.compose("stop", timeout=900))
        exits = {c["Labels"]["io.podman.compose.service"]: c.get("ExitCode") for c in self.containers()}
        self.timed("down_s", lambda: self.compose("down", "-v", timeout=900))
        return exits

    def leftovers(self) -> list[str]:
        """Anything of this project still present after `down`."""
        found = [f"container {c['Names'][0]}" for c in self.containers()]
        for kind in ("volume", "network", "pod"):
            out = run(["podman", kind, "ls", "--format", "json"], check=False).stdout
            for item in json.loads(out or "[]"):
                name = str(item.get("Name") or item.get("name") or "")
                # podman-compose names them <project>_<name>, and its pod pod_<project>.
                if name.startswith(f"{PROJECT}_") or name == f"pod_{PROJECT}":
                    found.append(f"{kind} {name}")
        return found


def prepare(out_dir: Path, feeds_dir: Path) -> Stack:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "podman-compose.log").unlink(missing_ok=True)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    derived = out_dir / "compose.yml"
    derived.write_text(
        "# Generated by tests/containers/stack.py from docker-compose.yml; see derive() for every change.\n"
        + yaml.safe_dump(derive(compose, feeds_dir), sort_keys=False),
        encoding="utf-8",
    )
    env_path = out_dir / "compose.env"
    env = env_file(ROOT / ".env.example", env_path)
    return Stack(compose_file=derived, env_path=env_path, env=env, logs=out_dir)
