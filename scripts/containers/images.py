"""Builds every image `make test-containers` runs, with podman, and records how long each took and how big it is.

- the project's images, from the real Dockerfiles and exactly the build specs (dockerfile, target, tag) that
  docker-compose.yml gives the services of the cpu profile, on the Python base stand-in
  (scripts/containers/base.sh) passed as PYTHON_IMAGE;
- the infrastructure stand-ins under deploy/standins/ (Kafka, PostgreSQL, Prometheus, an SMTP sink), for the
  images this machine cannot pull.

Builds use `--format docker` (OCI images drop HEALTHCHECK) and `--network host`. With HEAVY_LOCK set to a lock
file (on the shared development machine: /work/.heavy.lock) each build holds that lock while it runs.

    .venv/bin/python scripts/containers/images.py [--only kafka,podbrief:local] [--out test-artifacts/containers]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STANDINS = ROOT / "deploy" / "standins"
BASE_IMAGE = os.environ.get("BASE_STANDIN_IMAGE", "localhost/podbrief/python-standin:3.11-bookworm")
CACHE = ROOT / ".cache" / "containers"


@dataclass
class Build:
    name: str
    tag: str
    dockerfile: Path
    context: Path
    target: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    ignorefile: Path | None = None
    # What the image stands in for (None: a project image).
    stands_in_for: str | None = None


@dataclass
class Built:
    name: str
    tag: str
    seconds: float
    size_bytes: int
    user: str
    healthcheck: bool
    stands_in_for: str | None
    # Any step served from podman's layer cache (the build was not cold), how many of how many, and how long the
    # image's last cold build took (carried over from the previous record when this one was not cold and the
    # recipe, a hash of the Dockerfile, target and build arguments, is the same).
    cached: bool
    steps: int = 0
    steps_cached: int = 0
    recipe: str = ""
    cold_build_s: float | None = None


def log(msg: str) -> None:
    sys.stderr.write(f"containers/images: {msg}\n")
    sys.stderr.flush()


@contextmanager
def heavy() -> Iterator[None]:
    """Holds the machine-wide lock named by HEAVY_LOCK (if any); each build's time is measured inside it, so
    waiting for other engineers' work does not count."""
    lock = os.environ.get("HEAVY_LOCK")
    if not lock:
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kafka_versions() -> dict[str, str]:
    pom = (ROOT / "deploy" / "local" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    return dict(re.findall(r"<(kafka|log4j)\.version>([^<]+)</", pom))


def compose_builds(compose_file: Path, profile: str) -> list[Build]:
    """The images compose would build for `profile`, one per distinct tag."""
    compose = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    builds: dict[str, Build] = {}
    for name, svc in compose["services"].items():
        if "build" not in svc or profile not in svc.get("profiles", [profile]):
            continue
        spec = svc["build"]
        context = (compose_file.parent / spec.get("context", ".")).resolve()
        dockerfile = context / spec.get("dockerfile", "Dockerfile")
        ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
        tag = svc.get("image") or f"{compose.get('name', 'podbrief')}-{name}"
        args = {k: str(v) for k, v in (spec.get("args") or {}).items()}
        # The stand-in replaces the official base; every other build argument stays as compose gives it.
        args["PYTHON_IMAGE"] = BASE_IMAGE
        builds.setdefault(
            tag,
            Build(
                name=tag.split(":")[0],
                tag=tag,
                dockerfile=dockerfile,
                context=context,
                target=spec.get("target"),
                build_args=args,
                ignorefile=ignore if ignore.is_file() else None,
            ),
        )
    return list(builds.values())


def kafka_context() -> Path:
    """deploy/standins/kafka plus the jars its pom resolves (Maven Central, cached in ~/.m2 like scripts/kafka.sh)."""
    versions = kafka_versions()
    ctx = CACHE / "context" / "kafka"
    pom = STANDINS / "kafka" / "pom.xml"
    stamp = ctx / ".pom"
    want = f"{pom.read_text(encoding='utf-8')}{(ROOT / 'deploy/local/kafka/pom.xml').read_text(encoding='utf-8')}"
    if not (stamp.is_file() and stamp.read_text(encoding="utf-8") == want):
        shutil.rmtree(ctx, ignore_errors=True)
        (ctx / "libs").mkdir(parents=True)
        log(f"resolving the Kafka {versions['kafka']} stand-in classpath from Maven Central")
        subprocess.run(
            ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={ctx / 'libs'}", "-DincludeScope=runtime"],
            check=True,
        )  # fmt: skip
        stamp.write_text(want, encoding="utf-8")
    for item in ("Dockerfile", "bin"):
        src = STANDINS / "kafka" / item
        dest = ctx / item
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
    shutil.copy2(ROOT / "deploy" / "local" / "kafka" / "log4j2.properties", ctx / "log4j2.properties")
    return ctx


def standin_builds() -> list[Build]:
    base = {"BASE_IMAGE": BASE_IMAGE}
    kafka = kafka_versions()["kafka"]
    ctx = kafka_context()
    return [
        Build("kafka-standin", f"localhost/podbrief/kafka-standin:{kafka}", ctx / "Dockerfile", ctx,
              build_args=base, stands_in_for="apache/kafka"),
        Build("postgres-standin", "localhost/podbrief/postgres-standin:15-bookworm",
              STANDINS / "postgres" / "Dockerfile", STANDINS / "postgres", build_args=base,
              stands_in_for="postgres"),
        Build("prometheus-standin", "localhost/podbrief/prometheus-standin:2.42-bookworm",
              STANDINS / "prometheus" / "Dockerfile", STANDINS / "prometheus", build_args=base,
              stands_in_for="prom/prometheus"),
        Build("smtp-standin", "localhost/podbrief/smtp-standin:aiosmtpd-bookworm",
              STANDINS / "smtp" / "Dockerfile", STANDINS / "smtp", build_args=base,
              stands_in_for="axllent/mailpit"),
    ]  # fmt: skip


def recipe(spec: Build) -> str:
    """What decides how long a cold build takes: the Dockerfile, the target and the build arguments."""
    digest = hashlib.sha256(spec.dockerfile.read_bytes())
    digest.update(f"{spec.target}\n{sorted(spec.build_args.items())}".encode())
    return digest.hexdigest()[:16]


def inspect(tag: str) -> dict[str, Any]:
    out = subprocess.run(["podman", "image", "inspect", tag], capture_output=True, text=True, check=True).stdout
    data: dict[str, Any] = json.loads(out)[0]
    return data


def build(spec: Build, logs: Path) -> Built:
    cmd = ["podman", "build", "--format", "docker", "--network", "host", "--layers",
           "-f", str(spec.dockerfile), "-t", spec.tag]  # fmt: skip
    if spec.target:
        cmd += ["--target", spec.target]
    if spec.ignorefile:
        cmd += ["--ignorefile", str(spec.ignorefile)]
    for key, value in spec.build_args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd.append(str(spec.context))
    logfile = logs / f"build-{spec.name}.log"
    log(f"building {spec.tag} (log: {logfile.relative_to(ROOT) if logfile.is_relative_to(ROOT) else logfile})")
    with logfile.open("w", encoding="utf-8") as out:
        started = time.monotonic()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
        seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = "".join(logfile.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-40:])
        raise SystemExit(f"containers/images: building {spec.tag} failed (exit {proc.returncode}):\n{tail}")
    text = logfile.read_text(encoding="utf-8", errors="replace")
    # A multi-stage build prefixes each step with its stage ("[2/3] STEP 4/13: ...").
    steps = len(re.findall(r"^(?:\[\d+/\d+\] )?STEP \d+/\d+", text, re.MULTILINE))
    steps_cached = len(re.findall(r"^--> Using cache ", text, re.MULTILINE))
    info = inspect(spec.tag)
    config = info.get("Config") or {}
    return Built(
        name=spec.name,
        tag=spec.tag,
        seconds=round(seconds, 1),
        size_bytes=int(info["Size"]),
        user=str(config.get("User") or "root"),
        healthcheck=bool(info.get("Healthcheck") or config.get("Healthcheck")),
        stands_in_for=spec.stands_in_for,
        cached=steps_cached > 0,
        steps=steps,
        steps_cached=steps_cached,
        recipe=recipe(spec),
        cold_build_s=None if steps_cached else round(seconds, 1),
    )


def cold_build_s(image: dict[str, Any], before: dict[str, Any]) -> float | None:
    """This build's time when it was cold, else the last cold build's of the same recipe (None: not known)."""
    if not image.get("cached"):
        return float(image["seconds"])
    if before.get("recipe") and before.get("recipe") == image.get("recipe"):
        return before.get("cold_build_s")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compose-file", type=Path, default=ROOT / "docker-compose.yml")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--only", default="", help="comma-separated image names or tags")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "containers")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = {s for s in args.only.split(",") if s}
    specs = [*standin_builds(), *compose_builds(args.compose_file, args.profile)]
    if only:
        specs = [s for s in specs if s.name in only or s.tag in only]
    # One hold of the machine-wide lock per build: a cold build of everything takes about half an hour, most of it
    # the llama-server compile in extraction-cpu, and other work on the machine may run between the builds.
    results = []
    for spec in specs:
        with heavy():
            results.append(build(spec, args.out))
    record = args.out / "images.json"
    previous = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
    for r in results:
        r.cold_build_s = cold_build_s(asdict(r), previous.get(r.tag, {}))
    merged = {**(previous if only else {}), **{r.tag: asdict(r) for r in results}}
    record.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    for r in results:
        what = f"stand-in for {r.stands_in_for}" if r.stands_in_for else "project image"
        cache = f", {r.steps_cached}/{r.steps} steps from cache" if r.cached else ""
        log(f"{r.tag}: {r.size_bytes / 1e6:,.0f} MB, {r.seconds:.0f} s{cache}, user {r.user} ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
