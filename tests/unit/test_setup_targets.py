"""A fresh machine (issue 15): every make target that needs a system tool checks for it first, through
scripts/system-deps.sh, and either installs it or stops at once with one message naming the tool and the command
that installs it; `.ci/run` runs `make test` and nothing else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_DEPS = ROOT / "scripts" / "system-deps.sh"

# Each target that needs a tool beyond `make install`'s, and the check it must run before anything else.
FIRST_PREREQUISITE = {
    "test": "deps-test",
    "test-unit": "deps-unit",
    "test-integration": "deps-test",
    "test-faults": "deps-test",
    "test-e2e": "deps-test",
    "bench": "deps-bench",
    "bench-smoke": "deps-bench",
    "bench-transcribe": "deps-bench",
    "bench-e2e": "deps-bench",
    "services-up": "deps-services",
    "validate-deploy": "deps-deploy",
    "test-containers": "deps-containers",
    "brief-screenshot": "deps-browser",
    "up": "docker-compose-check",
    "down": "docker-compose-check",
}


def _rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines) of the Makefile's explicit rules."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    current: list[str] | None = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):(?!=)\s*([^#]*)", line)
        if m:
            prereqs = m.group(2).split("##")[0].split()
            current = []
            rules[m.group(1)] = (prereqs, current)
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return rules


@pytest.mark.parametrize(("target", "check"), sorted(FIRST_PREREQUISITE.items()))
def test_each_target_checks_its_tools_first(target: str, check: str) -> None:
    prereqs, _ = _rules()[target]
    assert prereqs and prereqs[0] == check, f"make {target}: {prereqs}"


def test_every_deps_target_names_a_group_the_script_knows() -> None:
    rules = _rules()
    deps = {t: recipe for t, (_, recipe) in rules.items() if t.startswith("deps-")}
    assert set(FIRST_PREREQUISITE.values()) - {"docker-compose-check"} <= set(deps)
    for target, recipe in deps.items():
        [line] = recipe
        group = line.split("system-deps.sh")[1].split()[0]
        assert group == target.removeprefix("deps-"), (target, line)
        usage = subprocess.run(
            ["bash", str(SYSTEM_DEPS), group, "--check"], capture_output=True, text=True, timeout=60, check=False
        )
        assert usage.returncode in (0, 1), (group, usage.stderr)


def test_the_unit_layer_installs_kustomize_before_pytest() -> None:
    _, recipe = _rules()["test-unit"]
    assert recipe[0] == "scripts/install-test-tools.sh" and "pytest" in recipe[-1], recipe


def test_ci_runs_make_test_and_nothing_else() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".ci" / "run").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    commands = [ln for ln in lines if not ln.startswith(("set ", "cd "))]
    assert commands == ["exec make test"], lines


def _path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH with every tool of this machine's PATH except `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            link = bin_dir / entry.name
            if entry.name not in missing and not link.exists() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return str(bin_dir)


def _path_with_only(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only `tools` (the shell utilities the script itself uses)."""
    bin_dir = tmp_path / "only"
    bin_dir.mkdir()
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_every_group_names_its_make_target_when_tools_are_missing(tmp_path: Path) -> None:
    env = {
        "PATH": _path_with_only(tmp_path, "bash", "dirname", "sed", "sort", "head", "awk", "ls", "grep", "cat"),
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,
        "PODBRIEF_NO_APT": "1",
    }
    for target, (_, recipe) in _rules().items():
        if not target.startswith("deps-"):
            continue
        group = recipe[0].split("system-deps.sh")[1].split()[0]
        proc = subprocess.run(
            ["bash", str(SYSTEM_DEPS), group], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 1, (group, proc.stderr)
        assert re.search(r"system-deps: 'make [a-z-]+' needs these tools", proc.stderr), (group, proc.stderr)
        assert "apt-get install -y --no-install-recommends" in proc.stderr, (group, proc.stderr)


def test_a_missing_tool_stops_with_one_message_naming_it_and_the_command(tmp_path: Path) -> None:
    env = {
        "PATH": _path_without(tmp_path, "promtool", "prometheus", "sudo"),
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,
        "PODBRIEF_NO_APT": "1",
    }
    proc = subprocess.run(
        ["bash", str(SYSTEM_DEPS), "unit"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1, proc.stderr
    assert "'make test-unit' needs these tools" in proc.stderr
    assert "prometheus, promtool" in proc.stderr
    assert re.search(r"apt-get install -y --no-install-recommends .*\bprometheus\b", proc.stderr), proc.stderr
    assert proc.stdout == ""
