"""Where each podbrief service listens and is probed, read from every deployment artefact: the environment the
compose file and the Kubernetes overlays give it (and the settings class reading that environment, which decides
the port it actually binds), the image's health check, the k8s container port, probes and Service, and the
Prometheus targets. tests/deploy/test_endpoints.py checks they agree with each other; tests/containers checks them
against what the running containers listen on."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from podbrief_testing.settings import settings_cls

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
# Compose profile -> (k8s overlay, the compose service that runs each podbrief service in that profile).
PROFILES: dict[str, tuple[str, dict[str, str]]] = {
    "cpu": ("dev", {s: ("extraction-cpu" if s == "extraction" else s) for s in SERVICES}),
    "gpu": ("gpu", {s: {"transcription": "transcription-gpu"}.get(s, s) for s in SERVICES}),
}
SECRET = "secret:"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def example_env() -> dict[str, str]:
    """What a user's .env holds after `cp .env.example .env`."""
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against `env`."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise KeyError(f"{name}: {arg}")
        return ""

    return _VAR.sub(one, value)


def compose_env(compose: dict[str, Any], name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment compose gives service `name`, with .env.example's values."""
    raw = compose["services"][name].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    values = example_env() if env is None else env
    return {k: interpolate("" if v is None else str(v), values) for k, v in raw.items()}


def render_overlay(kustomize: Path, overlay: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(kustomize), "build", str(ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kustomize build k8s/overlays/{overlay} failed:\n{proc.stderr}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _named(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def k8s_container(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    container: dict[str, Any] = _named(docs, "Deployment")[service]["spec"]["template"]["spec"]["containers"][0]
    return container


def k8s_env(docs: list[dict[str, Any]], service: str) -> dict[str, str]:
    """The environment of the service's container: its ConfigMaps in envFrom order, then `env`; a value from a
    Secret reads `secret:<secret>/<key>`."""
    configmaps = _named(docs, "ConfigMap")
    container = k8s_container(docs, service)
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update({k: str(v) for k, v in configmaps[ref["configMapRef"]["name"]].get("data", {}).items()})
    for item in container.get("env", []):
        key_ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = f"{SECRET}{key_ref['name']}/{key_ref['key']}" if key_ref else str(item.get("value", ""))
    return env


def own(env: Mapping[str, str], service: str) -> dict[str, str]:
    """Only the variables a service reads (its prefix, and SERVICE)."""
    return {k: v for k, v in env.items() if k.startswith(f"{service.upper()}_") or k == "SERVICE"}


@dataclass(frozen=True)
class Probe:
    path: str
    port: int


@dataclass(frozen=True)
class K8sEndpoints:
    container_port: int
    probes: dict[str, Probe]
    service_port: int
    service_target_port: int
    monitor_path: str
    monitor_port: int


def k8s_endpoints(docs: list[dict[str, Any]], service: str) -> K8sEndpoints:
    container = k8s_container(docs, service)
    ports = {p["name"]: int(p["containerPort"]) for p in container["ports"]}

    def resolve(port: int | str) -> int:
        return ports[port] if isinstance(port, str) else int(port)

    probes = {
        kind: Probe(container[kind]["httpGet"]["path"], resolve(container[kind]["httpGet"]["port"]))
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    }
    svc_port = _named(docs, "Service")[service]["spec"]["ports"][0]
    labels = _named(docs, "Service")[service]["metadata"].get("labels", {})
    monitors = [
        m
        for m in _named(docs, "ServiceMonitor").values()
        if m["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    (monitor,) = monitors
    (endpoint,) = monitor["spec"]["endpoints"]
    named_service_ports = {p.get("name"): int(p["port"]) for p in _named(docs, "Service")[service]["spec"]["ports"]}
    return K8sEndpoints(
        container_port=ports["http"],
        probes=probes,
        service_port=int(svc_port["port"]),
        service_target_port=resolve(svc_port.get("targetPort", svc_port["port"])),
        monitor_path=endpoint["path"],
        monitor_port=named_service_ports[endpoint["port"]],
    )


def prometheus_targets() -> dict[str, tuple[str, int, str]]:
    """service label -> (host, port, metrics path) in deploy/prometheus/prometheus.yml's podbrief job."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "podbrief"]
    out: dict[str, tuple[str, int, str]] = {}
    for static in job["static_configs"]:
        (target,) = static["targets"]
        host, port = target.rsplit(":", 1)
        out[static["labels"]["service"]] = (host, int(port), job.get("metrics_path", "/metrics"))
    return out


def _healthcheck_module() -> Any:
    spec = importlib.util.spec_from_file_location("podbrief_healthcheck", ROOT / "deploy" / "docker" / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def healthcheck_port(service: str, env: Mapping[str, str]) -> int:
    """The port the image's HEALTHCHECK probes, given the container's environment."""
    port: int = _healthcheck_module().port(service, env)
    return port


def _stand_in(name: str, value: str) -> str:
    """A valid value for a variable whose real value is a secret the settings need to load."""
    if not value.startswith(SECRET):
        return value
    if name.endswith("DB__URL"):
        return "postgresql+asyncpg://podbrief:x@postgres:5432/podbrief"
    return "s" * 32


@contextmanager
def _only_env(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    cwd = Path.cwd()
    try:
        for key in list(os.environ):
            if key.startswith(tuple(f"{s.upper()}_" for s in SERVICES)) or key in ("SERVICE", "PODBRIEF_SECRETS_DIR"):
                del os.environ[key]
        os.environ.update(env)
        with tempfile.TemporaryDirectory() as tmp:
            os.chdir(tmp)  # no .env from the checkout
            yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def bound_address(service: str, env: Mapping[str, str]) -> tuple[str, int]:
    """The (host, port) the service binds in a container with this environment: its settings class, read the way
    `podbrief serve` reads it."""
    cls = settings_cls(service)
    with _only_env({k: _stand_in(k, v) for k, v in own(env, service).items()}):
        settings = cls()
    return str(settings.http.host), int(settings.http.port)
