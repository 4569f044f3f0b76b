"""The Kubernetes manifests: `kustomize build` of both overlays, every built-in resource validated against the
Kubernetes OpenAPI schemas (kubernetes-validate), the KEDA and Prometheus Operator custom resources against
their CRDs' schemas (vendored from the projects' Go modules), and the rules podbrief relies on."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from podbrief.events import topics as event_topics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "deploy" / "schemas" / "crds"
# The oldest Kubernetes minor the manifests target (autoscaling/v2, policy/v1 and PSA labels all exist there).
K8S_VERSION = "1.30.0"
SERVICES = {"ingest": 8001, "transcription": 8002, "extraction": 8003, "clustering": 8004, "delivery": 8005}
# Custom resources validated against vendored CRD schemas:
#   keda.sh_scaledobjects.yaml          github.com/kedacore/keda/v2@v2.18.1 config/crd/bases
#   monitoring.coreos.com_*.yaml        github.com/prometheus-operator/prometheus-operator@v0.85.0
#                                       example/prometheus-operator-crd
CRD_FILES = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
# Custom resources not validated against a schema, and why. They get the structural checks in
# test_strimzi_resources_are_consistent instead.
SKIPPED_CRDS = {
    ("kafka.strimzi.io", "Kafka"): "Strimzi ships its CRDs only as GitHub release assets and in its Helm "
    "chart, neither reachable from CI; its Maven artifact io.strimzi:api (checked 0.48.0) holds classes only",
    ("kafka.strimzi.io", "KafkaNodePool"): "same as Kafka",
    ("kafka.strimzi.io", "KafkaTopic"): "same as Kafka",
}
# Containers allowed a writable root filesystem, and why.
WRITABLE_ROOT = {"vllm": "Triton and torch.compile write JIT caches to paths that cannot all be redirected"}


def group_kind(doc: dict[str, Any]) -> tuple[str, str]:
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    return group, doc["kind"]


def of_kind(docs: list[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] == kind)


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def _strict(schema: Any) -> Any:
    """CRD schemas leave unknown fields to the API server's pruning; reject them here so a typo fails."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def crd_validators() -> dict[tuple[str, str, str], jsonschema.protocols.Validator]:
    out: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}
    for (group, kind), filename in CRD_FILES.items():
        crd = yaml.safe_load((CRDS / filename).read_text(encoding="utf-8"))
        assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            out[(group, version["name"], kind)] = jsonschema.Draft4Validator(schema)
    return out


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_builtin_resources_validate_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    checked = 0
    errors: list[str] = []
    for doc in rendered[overlay]:
        if group_kind(doc) in SKIPPED_CRDS or group_kind(doc) in CRD_FILES:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema and not a listed CRD")
    assert errors == []
    assert checked >= 30


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_custom_resources_validate_against_their_crds(
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
    crd_validators: dict[tuple[str, str, str], jsonschema.protocols.Validator],
) -> None:
    errors: list[str] = []
    seen: set[tuple[str, str]] = set()
    for doc in rendered[overlay]:
        if group_kind(doc) not in CRD_FILES:
            continue
        group, version = doc["apiVersion"].split("/")
        validator = crd_validators.get((group, version, doc["kind"]))
        if validator is None:
            errors.append(f"{doc['kind']}: CRD has no version {version}")
            continue
        seen.add(group_kind(doc))
        errors += [
            f"{doc['kind']}/{doc['metadata']['name']} {list(e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(doc)
        ]
    assert errors == []
    expected = {("monitoring.coreos.com", "ServiceMonitor"), ("monitoring.coreos.com", "PrometheusRule")}
    assert expected <= seen
    if overlay == "gpu":
        assert ("keda.sh", "ScaledObject") in seen


def test_the_crd_check_catches_a_typo(
    crd_validators: dict[tuple[str, str, str], jsonschema.protocols.Validator],
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    scaled = next(of_kind(rendered["gpu"], "ScaledObject"))
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    assert list(crd_validators[("keda.sh", "v1alpha1", "ScaledObject")].iter_errors(broken))


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_every_workload_has_probes_resources_and_a_non_root_security_context(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    problems: list[str] = []
    workloads = list(_pod_specs(rendered[overlay]))
    assert {name for name, _ in workloads} >= set(SERVICES) | {"qdrant", "postgres"}
    for name, pod in workloads:
        pod_sc = pod.get("securityContext", {})
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile RuntimeDefault missing")
        # Init containers (extraction's fetch-model in the dev overlay) run once to completion: no probes, the rest
        # holds for them too.
        for c in [*pod["containers"], *pod.get("initContainers", [])]:
            where = f"{name}/{c['name']}"
            sc = c.get("securityContext", {})
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c and c in pod["containers"]:
                    problems.append(f"{where}: no {probe}")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(part, {})):
                    problems.append(f"{where}: resources.{part} needs cpu and memory")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{where}: runAsNonRoot not set")
            if (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) == 0:
                problems.append(f"{where}: runAsUser must be a non-zero uid")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities must drop ALL")
            if sc.get("readOnlyRootFilesystem") is not True and name not in WRITABLE_ROOT:
                problems.append(f"{where}: readOnlyRootFilesystem must be true")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if sc.get("readOnlyRootFilesystem") and "/tmp" not in mounts:
                problems.append(f"{where}: read-only root without a writable /tmp")
    assert problems == []


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_services_probe_their_own_endpoints_on_their_own_ports(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    deployments = by_name(rendered[overlay], "Deployment")
    services = by_name(rendered[overlay], "Service")
    for name, port in SERVICES.items():
        c = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert c["args"] == ["serve", name]
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert services[name]["metadata"]["labels"]["app.kubernetes.io/component"] == "service"


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_every_workload_has_a_disruption_budget(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    budgets = [p["spec"]["selector"]["matchLabels"] for p in of_kind(rendered[overlay], "PodDisruptionBudget")]
    for doc in rendered[overlay]:
        if doc["kind"] in ("Deployment", "StatefulSet") and doc["metadata"]["name"] != "mailpit":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(sel.items() <= labels.items() for sel in budgets), doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_settings_in_configmaps_and_secret_refs_are_fields_the_services_read(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, settings_env: Callable[[str], str | None]
) -> None:
    problems: list[str] = []
    configmaps = by_name(rendered[overlay], "ConfigMap")
    secrets = by_name(rendered[overlay], "Secret")
    for cm in configmaps.values():
        problems += [why for key in cm.get("data", {}) if (why := settings_env(key))]
    deployments = by_name(rendered[overlay], "Deployment")
    for name in SERVICES:
        c = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        for ref in c.get("envFrom", []):
            assert ref["configMapRef"]["name"] in configmaps, f"{name}: missing {ref}"
        for env in c.get("env", []):
            if env["name"] != "SERVICE" and (why := settings_env(env["name"])):
                problems.append(why)
            key_ref = env.get("valueFrom", {}).get("secretKeyRef")
            if key_ref:
                assert key_ref["key"] in secrets[key_ref["name"]]["stringData"], f"{name}: {key_ref}"
    assert problems == []


def test_gpu_overlay_puts_transcription_and_vllm_on_gpu_nodes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deployments = by_name(rendered["gpu"], "Deployment")
    for name in ("transcription", "vllm"):
        pod = deployments[name]["spec"]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert deployments["transcription"]["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "ghcr.io/podbrief/podbrief-cuda:"
    )
    vllm_args = deployments["vllm"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-prefix-caching" in vllm_args
    assert any(a.startswith("--max-model-len=") for a in vllm_args)
    assert any(a.startswith("--gpu-memory-utilization=") for a in vllm_args)
    extraction = by_name(rendered["gpu"], "ConfigMap")["podbrief-extraction"]["data"]
    assert extraction["EXTRACTION_LLM__BASE_URL"] == "http://vllm:8000/v1"
    dev = by_name(rendered["dev"], "Deployment")
    assert "vllm" not in dev
    assert all("nvidia.com/gpu" not in str(d) for d in dev.values())


def test_autoscaling_follows_consumer_lag_with_keda_or_cpu_with_the_hpa_fallback(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    consumed = {"transcription": event_topics.EPISODE_DISCOVERED, "extraction": event_topics.EPISODE_TRANSCRIBED}
    scaled = by_name(rendered["gpu"], "ScaledObject")
    assert set(scaled) == set(consumed)
    assert list(of_kind(rendered["gpu"], "HorizontalPodAutoscaler")) == [], "KEDA owns the HPAs in gpu"
    deployments = by_name(rendered["gpu"], "Deployment")
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(rendered["gpu"], "KafkaTopic")}
    for name, topic in consumed.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        # The chassis names each consumer group after its service.
        assert trigger["metadata"]["consumerGroup"] == name
        assert trigger["metadata"]["topic"] == topic
        assert trigger["metadata"]["bootstrapServers"].startswith("podbrief-kafka-bootstrap.")
        assert spec["maxReplicaCount"] <= partitions[topic]
        assert spec["fallback"]["replicas"] >= 1
    hpas = by_name(rendered["dev"], "HorizontalPodAutoscaler")
    assert set(hpas) == set(consumed)
    assert list(of_kind(rendered["dev"], "ScaledObject")) == []


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_strimzi_resources_are_consistent(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    (kafka,) = of_kind(docs, "Kafka")
    pools = list(of_kind(docs, "KafkaNodePool"))
    cluster = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    assert all(p["metadata"]["labels"]["strimzi.io/cluster"] == cluster for p in pools)
    roles = {r for p in pools for r in p["spec"]["roles"]}
    assert roles == {"controller", "broker"}
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert [(ln["name"], ln["port"], ln["type"]) for ln in kafka["spec"]["kafka"]["listeners"]] == [
        ("plain", 9092, "internal")
    ]
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] <= brokers and config["min.insync.replicas"] <= brokers
    topics = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
    expected = {t for base in event_topics.TOPICS.values() for t in (base, event_topics.dlq_topic(base))}
    assert set(topics) == expected
    for topic in topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert 1 <= topic["spec"]["replicas"] <= brokers
        assert topic["spec"]["config"]["min.insync.replicas"] <= topic["spec"]["replicas"]
    # Kafka caps messages at the broker and per topic; transcripts travel inside events.
    assert config["message.max.bytes"] >= 8 * 1024 * 1024
    bootstrap = {
        v
        for cm in of_kind(docs, "ConfigMap")
        for k, v in cm.get("data", {}).items()
        if k.endswith("_BUS__KAFKA__BOOTSTRAP_SERVERS")
    }
    assert bootstrap == {f"{cluster}-kafka-bootstrap:9092"}


@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_monitoring_and_network_policies_cover_the_services(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    monitors = by_name(docs, "ServiceMonitor")
    selector = monitors["podbrief"]["spec"]["selector"]["matchLabels"]
    selected = [
        s["metadata"]["name"]
        for s in of_kind(docs, "Service")
        if selector.items() <= s["metadata"].get("labels", {}).items()
    ]
    assert sorted(selected) == sorted(SERVICES)
    assert monitors["podbrief"]["spec"]["endpoints"][0]["path"] == "/metrics/"
    policies = by_name(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    scrape = policies["allow-prometheus-scrape"]["spec"]["podSelector"]["matchLabels"]
    for name, pod in by_name(docs, "Deployment").items():
        if name in SERVICES:
            assert scrape.items() <= pod["spec"]["template"]["metadata"]["labels"].items()
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {"podbrief"}


def test_prometheusrule_is_generated_from_the_alert_rules() -> None:
    spec = importlib.util.spec_from_file_location(
        "to_prometheusrule", ROOT / "deploy" / "prometheus" / "to_prometheusrule.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "k8s" / "base" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == module.render(), "run: python deploy/prometheus/to_prometheusrule.py"


def test_skipped_crds_are_exactly_the_strimzi_kinds(rendered: dict[str, list[dict[str, Any]]]) -> None:
    present = {group_kind(d) for docs in rendered.values() for d in docs}
    assert set(SKIPPED_CRDS) <= present
    assert all(reason for reason in SKIPPED_CRDS.values())


def test_the_dev_overlay_installs_the_extraction_model_where_the_service_looks(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # The extraction-cpu image carries no model: an init container installs it into a volume the service mounts at
    # EXTRACTION_MODELS_DIR. With vLLM (gpu) there is nothing to install.
    pod = by_name(rendered["dev"], "Deployment")["extraction"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    service = pod["containers"][0]
    assert init["image"] == service["image"] and init["args"][:2] == ["extraction", "fetch-model"]
    dest = init["args"][init["args"].index("--dest") + 1]
    models_dir = by_name(rendered["dev"], "ConfigMap")["podbrief-extraction"]["data"]["EXTRACTION_MODELS_DIR"]
    assert dest == models_dir == "/data/models"
    mounted = {c["name"]: {m["mountPath"]: m["name"] for m in c["volumeMounts"]} for c in (init, service)}
    assert mounted[init["name"]][dest] == mounted[service["name"]][dest]
    volumes = {v["name"]: v for v in pod["volumes"]}
    size = volumes[mounted[service["name"]][dest]]["emptyDir"]["sizeLimit"]
    assert int(size.removesuffix("Gi")) * 2**30 > 1_117_320_768, "no room for the model"
    gpu = by_name(rendered["gpu"], "Deployment")["extraction"]["spec"]["template"]["spec"]
    assert "initContainers" not in gpu
