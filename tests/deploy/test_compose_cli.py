"""The real Docker Compose v2 CLI on docker-compose.yml: `docker-compose config` resolves interpolation,
anchors, profiles, depends_on and the secrets required from .env, without an engine. The binary is built from
github.com/docker/compose/v2 by `scripts/validate_deploy.sh --compose` (slow the first time: `make validate-deploy`
runs it, `make test` does not)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.compose_cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_docker_compose_v2_accepts_the_file_with_the_example_env(profile: str, tmp_path: Path) -> None:
    binary = ROOT / ".cache" / "bin" / "docker-compose"
    assert binary.is_file(), "run scripts/validate_deploy.sh --compose --install to build docker-compose"
    env_file = tmp_path / ".env"
    env_file.write_text((ROOT / ".env.example").read_text(encoding="utf-8"), encoding="utf-8")
    base = [
        str(binary),
        "--project-directory",
        str(ROOT),
        "-f",
        str(ROOT / "docker-compose.yml"),
        "--env-file",
        str(env_file),
        "--profile",
        profile,
    ]
    config = subprocess.run(
        [*base, "config", "--format", "json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert config.returncode == 0, config.stderr
    services = set(json.loads(config.stdout)["services"])
    stage = {"cpu": {"transcription", "extraction-cpu"}, "gpu": {"transcription-gpu", "extraction", "vllm"}}
    assert stage[profile] <= services
    assert not (stage["gpu" if profile == "cpu" else "cpu"] - {"vllm"}) & services
    env_file.write_text(
        "\n".join(ln for ln in env_file.read_text().splitlines() if not ln.startswith("POSTGRES_PASSWORD="))
    )
    missing = subprocess.run([*base, "config", "--quiet"], capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr
