"""The compose file and the Kubernetes overlays give every service the same environment, and every artefact that
names a service's port or probe (the settings that decide what it binds, the image's health check, the k8s
container port, probes, Service and ServiceMonitor, the Prometheus targets, the compose port mappings) names the
same one. `make test-containers` checks the same against the running containers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import endpoints
from endpoints import PROFILES, SECRET, SERVICES

pytestmark = pytest.mark.unit

# Variables only one platform sets, and why.
ONLY_ONE_PLATFORM = {
    ("extraction", "EXTRACTION_LLM__API_KEY", "cpu"): "the k8s Deployment mounts the LLM key in both overlays (the "
    "dev overlay's endpoint is empty, so it goes unused); compose's cpu profile has no LLM endpoint at all",
    ("extraction", "EXTRACTION_LLAMA__THREADS", "gpu"): "k8s/base sets the embedded llama-server's threads for "
    "every overlay; with vLLM (gpu) nothing reads it",
}
# Variables whose values differ by platform by design: where Kafka is and how many brokers it has, how secrets
# arrive, and the log level each environment wants (compose takes LOG_LEVEL from .env, the dev overlay logs DEBUG).
PLATFORM_VALUES = {"BUS__KAFKA__BOOTSTRAP_SERVERS", "DB__URL", "LOG_LEVEL", "BUS__KAFKA__REPLICATION_FACTOR"}
# The gpu overlay is the production layout, with a real mail relay and a public address; compose's gpu profile
# keeps the mail catcher and localhost.
PROFILE_VALUES = {"gpu": {"SMTP__HOST", "SMTP__PORT", "SMTP__STARTTLS", "PUBLIC_BASE_URL"}}


@pytest.fixture(scope="module")
def overlays(kustomize: Path) -> dict[str, list[dict[str, Any]]]:
    return {overlay: endpoints.render_overlay(kustomize, overlay) for overlay, _ in PROFILES.values()}


def _cases() -> list[tuple[str, str]]:
    return [(profile, service) for profile in PROFILES for service in SERVICES]


@pytest.mark.parametrize(("profile", "service"), _cases())
def test_compose_and_k8s_give_a_service_the_same_environment(
    profile: str, service: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    overlay, names = PROFILES[profile]
    compose = endpoints.own(endpoints.compose_env(endpoints.load_compose(), names[service]), service)
    k8s = endpoints.own(endpoints.k8s_env(overlays[overlay], service), service)
    allowed = {k for (s, k, p) in ONLY_ONE_PLATFORM if s == service and p == profile}
    assert set(compose) ^ set(k8s) == allowed, f"compose has {sorted(compose)}, k8s/overlays/{overlay} {sorted(k8s)}"
    differ = {
        key: (compose[key], k8s[key])
        for key in set(compose) & set(k8s)
        if compose[key] != k8s[key]
        and not k8s[key].startswith(SECRET)
        and key.removeprefix(f"{service.upper()}_") not in PLATFORM_VALUES | PROFILE_VALUES.get(profile, set())
    }
    assert differ == {}, f"{profile}/{overlay}: (compose, k8s) values differ"
    # A secret arrives as a secret on both: ${...} from .env in compose, a secretKeyRef in k8s.
    raw = endpoints.load_compose()["services"][names[service]]["environment"]
    for key, value in k8s.items():
        if value.startswith(SECRET) and key in raw:
            assert "${" in str(raw[key]), f"{key} is a k8s secret but literal in compose"


@pytest.mark.parametrize(("profile", "service"), _cases())
def test_every_artefact_names_the_port_the_service_binds(
    profile: str, service: str, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    overlay, names = PROFILES[profile]
    compose = endpoints.load_compose()
    c_env = endpoints.compose_env(compose, names[service])
    k_env = endpoints.k8s_env(overlays[overlay], service)
    host, port = endpoints.bound_address(service, c_env)
    # Reachable from other containers and pods, on the same port under both.
    assert host == "0.0.0.0"
    assert endpoints.bound_address(service, k_env) == (host, port)
    assert endpoints.healthcheck_port(service, c_env) == port
    assert endpoints.healthcheck_port(service, k_env) == port

    k8s = endpoints.k8s_endpoints(overlays[overlay], service)
    assert k8s.container_port == port
    assert k8s.service_target_port == port and k8s.service_port == port
    assert {kind: p.port for kind, p in k8s.probes.items()} == dict.fromkeys(k8s.probes, port)
    assert k8s.probes["livenessProbe"].path == "/healthz"
    assert k8s.probes["readinessProbe"].path == "/readyz"

    prom_host, prom_port, prom_path = endpoints.prometheus_targets()[service]
    svc = compose["services"][names[service]]
    aliases = (
        svc.get("networks", {}).get("default", {}).get("aliases", []) if isinstance(svc.get("networks"), dict) else []
    )
    assert prom_host in {names[service], *aliases}
    assert prom_port == port and k8s.monitor_port == port
    assert prom_path == k8s.monitor_path == "/metrics/"
    for mapping in svc.get("ports", []):
        assert int(str(mapping).rsplit(":", 1)[1]) == port, f"{names[service]} publishes {mapping}"


def test_the_image_health_check_probes_readiness() -> None:
    text = (endpoints.ROOT / "deploy" / "docker" / "healthcheck.py").read_text(encoding="utf-8")
    assert "/readyz" in text
