"""docker-compose.yml and the Dockerfiles, checked without a Docker engine: the Compose Specification's JSON
schema (vendored from github.com/compose-spec/compose-go/v2 v2.16.2, schema/compose-spec.json), build targets
and pinned images, secrets only through ${...}, and settings names the services really read."""

from __future__ import annotations

import copy
import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
SCHEMA = ROOT / "tests" / "deploy" / "schemas" / "compose-spec.json"
DOCKERFILES = ROOT / "deploy" / "docker"
SECRETISH = re.compile(r"PASSWORD|SECRET|API_KEY|TOKEN", re.IGNORECASE)
REQUIRED_VAR = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")
ANY_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def stages(dockerfile: Path) -> dict[str, str]:
    """Stage name -> base image of each `FROM <image> AS <name>` (ARG defaults substituted)."""
    text = dockerfile.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    found: dict[str, str] = {}
    for image, name in re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        found[name or image] = image
    return found


def pinned(image: str) -> bool:
    """A tag that is a version (not latest or a floating major), or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and bool(re.search(r"\d+\.\d+", tag))


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_what_compose_would_reject(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    # Guards against a vendored schema that accepts anything: a typo'd key and a wrong type must both fail.
    typo = copy.deepcopy(compose)
    typo["services"]["ingest"]["enviroment"] = {"A": "b"}
    wrong_type = copy.deepcopy(compose)
    wrong_type["services"]["kafka"]["depends_on"] = 42
    assert list(validator.iter_errors(typo))
    assert list(validator.iter_errors(wrong_type))


def test_every_service_builds_a_dockerfile_target_or_uses_a_pinned_image(compose: dict[str, Any]) -> None:
    problems: list[str] = []
    for name, svc in compose["services"].items():
        build = svc.get("build")
        if build is not None:
            dockerfile = ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: {dockerfile} does not exist")
                continue
            if build.get("target") not in stages(dockerfile):
                problems.append(f"{name}: target {build.get('target')!r} is not a stage of {dockerfile.name}")
        elif not pinned(svc.get("image", "")):
            problems.append(f"{name}: image {svc.get('image')!r} is not pinned to a version")
    assert problems == []


def test_dockerfiles_are_multi_stage_pinned_non_root_and_check_readiness() -> None:
    for dockerfile in (DOCKERFILES / "Dockerfile", DOCKERFILES / "Dockerfile.cuda"):
        text = dockerfile.read_text(encoding="utf-8")
        found = stages(dockerfile)
        assert len(re.findall(r"^FROM\s", text, re.MULTILINE)) >= 2, f"{dockerfile.name} is not multi-stage"
        external = {img for img in found.values() if img not in found}
        assert all(pinned(img) for img in external), f"{dockerfile.name}: unpinned base in {external}"
        users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
        assert users and all(u.split(":")[0] not in {"0", "root"} for u in users), f"{dockerfile.name}: root"
        assert "HEALTHCHECK" in text and "podbrief-healthcheck" in text
    cuda = stages(DOCKERFILES / "Dockerfile.cuda")
    assert any(img.startswith("nvidia/cuda:12.") and "cudnn" in img for img in cuda.values())
    assert "/readyz" in (DOCKERFILES / "healthcheck.py").read_text(encoding="utf-8")


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "code"), [(200, 0), (503, 1)])
def test_the_container_healthcheck_follows_readyz(
    readyz_server: http.server.HTTPServer, status: int, code: int
) -> None:
    _Readyz.status = status
    env = {**os.environ, "SERVICE": "delivery", "DELIVERY_HTTP__PORT": str(readyz_server.server_address[1])}
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=30, check=False)
    assert proc.returncode == code


def test_the_healthcheck_fails_when_nothing_listens() -> None:
    env = {**os.environ, "SERVICE": "ingest", "INGEST_HTTP__PORT": "9"}
    proc = subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, timeout=30, check=False)
    assert proc.returncode == 1


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    leaks: list[str] = []
    for name, svc in compose["services"].items():
        for key, value in _environment(svc).items():
            if SECRETISH.search(key) and value and not value.startswith("${"):
                leaks.append(f"{name}.{key}")
            if "://" in value and "@" in value and "${" not in value.split("@")[0]:
                leaks.append(f"{name}.{key} (credentials in a URL)")
    assert leaks == []


def test_env_example_defines_every_variable_the_compose_file_requires() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    required = set(REQUIRED_VAR.findall(text))
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert required, "the compose file requires no variables; secrets would be inline"
    assert required - example.keys() == set()
    assert set(ANY_VAR.findall(text)) - example.keys() == set(), "document every ${VAR} in .env.example"


def test_podbrief_settings_in_compose_are_fields_the_services_read(
    compose: dict[str, Any], settings_env: Callable[[str], str | None]
) -> None:
    problems: list[str] = []
    for name, svc in compose["services"].items():
        if "SERVICE" not in _environment(svc):
            continue
        for key in _environment(svc):
            if key != "SERVICE" and (why := settings_env(key)) is not None:
                problems.append(f"{name}: {why}")
    assert problems == []


def test_profiles_split_cpu_and_gpu_and_volumes_are_named(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["vllm"]["profiles"] == ["gpu"]
    by_profile = {p: {n for n, s in services.items() if p in s.get("profiles", [p])} for p in ("cpu", "gpu")}
    for profile, names in by_profile.items():
        # Each profile runs exactly one transcription and one extraction, reachable under the plain name.
        for stage in ("transcription", "extraction"):
            running = [
                n
                for n in names
                if n == stage or stage in services[n].get("networks", {}).get("default", {}).get("aliases", [])
            ]
            assert len(running) == 1, f"{profile}: {stage} runs as {running}"
    declared = set(compose["volumes"])
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
    for required in (
        "kafka",
        "postgres",
        "qdrant",
        "vllm",
        "prometheus",
        "grafana",
        "mailpit",
        "ingest",
        "clustering",
        "delivery",
    ):
        assert required in services


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cuda"])
def test_the_build_context_keeps_what_the_dockerfile_copies_and_nothing_local(dockerfile: str) -> None:
    text = (DOCKERFILES / dockerfile).read_text(encoding="utf-8")
    ignore = (DOCKERFILES / f"{dockerfile}.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [ln.strip() for ln in ignore if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*", "exclude everything, then re-include"
    kept = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = [
        src
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE)
        for src in [w for w in line.split() if not w.startswith("--")][:-1]
    ]
    assert copied
    for src in copied:
        assert any(src.rstrip("/") == k or src.startswith(k + "/") for k in kept), f"{src} is not in the context"
    assert not {".venv", ".cache", ".data", ".env"} & kept


def test_real_deployments_build_on_bases_pinned_by_digest(compose: dict[str, Any]) -> None:
    """Every build passes the Dockerfiles' base images by digest, for the same tags the Dockerfiles default to."""
    defaults = {}
    for dockerfile in (DOCKERFILES / "Dockerfile", DOCKERFILES / "Dockerfile.cuda"):
        defaults.update(re.findall(r"^ARG\s+(\w+_IMAGE)=(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE))
    builds = [svc["build"] for svc in compose["services"].values() if "build" in svc]
    assert builds
    for build in builds:
        dockerfile = (ROOT / build["dockerfile"]).read_text(encoding="utf-8")
        used = set(re.findall(r"^ARG\s+(\w+_IMAGE)=", dockerfile, re.MULTILINE))
        args = build.get("args", {})
        for name in used:
            assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", args.get(name, "")), f"{build['dockerfile']}: {name}"
            assert args[name].split("@")[0] == defaults[name], f"{name}: compose pins another tag than the default"
