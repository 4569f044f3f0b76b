"""EmbeddedLlamaServer process handling, with stand-in executables (the real binary: the slow tests)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import httpx
import pytest
from podbrief.errors import ConfigurationError
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import EmbeddedLlamaSettings, packaged_smollm2

pytestmark = pytest.mark.unit

# Serves /health like llama-server: 503 while "loading", then 200.
FAKE_SERVER = f"""#!{sys.executable}
import sys, time, json
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
assert args[args.index("-t") + 1] == "1" and "--no-webui" in args
started = time.monotonic()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        ok = time.monotonic() - started > 0.3
        body = json.dumps({{"status": "ok" if ok else "loading model"}}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("fake llama-server listening", flush=True)
HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

CRASHING = "#!/bin/sh\necho 'illegal instruction (AMX)'\nexit 132\n"


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def settings(tmp_path: Path, binary: Path, **kw: object) -> EmbeddedLlamaSettings:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    kw.setdefault("threads", 1)
    return EmbeddedLlamaSettings(binary=binary, gguf=gguf, **kw)  # type: ignore[arg-type]


async def test_starts_waits_for_health_and_stops(tmp_path: Path) -> None:
    server = EmbeddedLlamaServer(settings(tmp_path, executable(tmp_path / "llama-server", FAKE_SERVER)))
    async with server:
        assert server.running and server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.startup_s is not None and server.startup_s >= 0.3
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{server.port}/health")).status_code == 200
    assert not server.running


def test_blocking_start_for_session_fixtures(tmp_path: Path) -> None:
    server = EmbeddedLlamaServer(settings(tmp_path, executable(tmp_path / "llama-server", FAKE_SERVER)))
    server.start_blocking()
    try:
        assert httpx.get(f"http://127.0.0.1:{server.port}/health").status_code == 200
    finally:
        server.stop()
    assert not server.running


async def test_crash_at_start_reports_the_log_tail(tmp_path: Path) -> None:
    server = EmbeddedLlamaServer(settings(tmp_path, executable(tmp_path / "llama-server", CRASHING)))
    with pytest.raises(ConfigurationError, match="illegal instruction"):
        await server.start()
    assert not server.running


async def test_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    server = EmbeddedLlamaServer(settings(tmp_path, tmp_path / "nope"))
    with pytest.raises(ConfigurationError, match=r"scripts/build-llama\.sh"):
        await server.start()


async def test_unhealthy_within_deadline_fails(tmp_path: Path) -> None:
    hangs = executable(tmp_path / "llama-server", "#!/bin/sh\necho loading\nsleep 30\n")
    server = EmbeddedLlamaServer(settings(tmp_path, hangs, startup_timeout_s=0.5))
    with pytest.raises(ConfigurationError, match="not healthy"):
        await server.start()
    assert not server.running


def slot_dir(server: EmbeddedLlamaServer) -> Path:
    command = server.command()
    return Path(command[command.index("--slot-save-path") + 1])


def test_saved_system_prompt_states_outlive_the_server_for_the_same_build_model_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODBRIEF_USER_CACHE", str(tmp_path / "user-cache"))
    binary = executable(tmp_path / "llama-server", FAKE_SERVER)
    same = settings(tmp_path, binary)
    first = EmbeddedLlamaServer(same).start_blocking()
    saved = slot_dir(first)
    assert saved.parent == tmp_path / "user-cache" / "llama-slots"
    (saved / "prefix-abc.bin").write_bytes(b"state")  # what llama-server writes on a slot save
    first.stop()
    # A new server (a restart, a fresh data directory) of the same build, model and settings finds it.
    again = EmbeddedLlamaServer(same).start_blocking()
    try:
        assert slot_dir(again) == saved and (saved / "prefix-abc.bin").read_bytes() == b"state"
    finally:
        again.stop()
    # The same model in another clone (another path, another mtime) is the same model.
    copy = tmp_path / "clone" / "model.gguf"
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "model.gguf").read_bytes())
    elsewhere = EmbeddedLlamaServer(same.model_copy(update={"gguf": copy})).start_blocking()
    assert slot_dir(elsewhere) == saved
    elsewhere.stop()
    assert {p.name for p in saved.parent.iterdir()} == {saved.name}
    # A state is only valid for what computed it: other settings, another model file or build, other directory.
    other_ctx = EmbeddedLlamaServer(same.model_copy(update={"ctx_size": 4096})).start_blocking()
    (slot_dir(other_ctx) / "prefix-abc.bin").write_bytes(b"state")
    other_ctx.stop()
    (tmp_path / "model.gguf").write_bytes(b"GGUF, another model")
    other_model = EmbeddedLlamaServer(same).start_blocking()
    (slot_dir(other_model) / "prefix-abc.bin").write_bytes(b"state")
    other_model.stop()
    dirs = {p.name for p in saved.parent.iterdir()}
    assert len(dirs) == 3 and saved.name in dirs
    # A server that saved nothing (stopped before its first request) leaves no empty directory behind.
    unused = EmbeddedLlamaServer(same.model_copy(update={"ctx_size": 2048})).start_blocking()
    unused_dir = slot_dir(unused)
    unused.stop()
    assert not unused_dir.exists() and {p.name for p in saved.parent.iterdir()} == dirs


def test_slot_states_unused_for_a_week_are_removed_and_persistence_can_be_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    monkeypatch.setenv("PODBRIEF_USER_CACHE", str(tmp_path / "user-cache"))
    binary = executable(tmp_path / "llama-server", FAKE_SERVER)
    root = tmp_path / "user-cache" / "llama-slots"
    stale, recent = root / "old-build", root / "other-model"
    stale.mkdir(parents=True)
    recent.mkdir()
    week_ago = time.time() - 8 * 86_400
    os.utime(stale, (week_ago, week_ago))
    server = EmbeddedLlamaServer(settings(tmp_path, binary)).start_blocking()
    server.stop()
    assert not stale.exists() and recent.exists()

    temporary = EmbeddedLlamaServer(settings(tmp_path, binary, persist_slots=False)).start_blocking()
    path = slot_dir(temporary)
    assert path.parent != root and path.is_dir()
    temporary.stop()
    assert not path.exists()


def test_packaged_model_is_located_without_importing_it() -> None:
    path = packaged_smollm2()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()


def test_all_cores_by_default(tmp_path: Path) -> None:
    import os

    s = EmbeddedLlamaSettings(binary=tmp_path / "llama-server", gguf=tmp_path / "m.gguf")
    assert s.threads == 0 and s.thread_count == (os.cpu_count() or 1)
    command = EmbeddedLlamaServer(s).command()
    assert command[command.index("-t") + 1] == str(s.thread_count)


async def test_missing_model_says_how_to_install_it(tmp_path: Path) -> None:
    binary = executable(tmp_path / "llama-server", FAKE_SERVER)
    s = EmbeddedLlamaSettings(binary=binary, gguf=tmp_path / "absent.gguf", threads=1)
    with pytest.raises(ConfigurationError, match="podbrief extraction fetch-model"):
        await EmbeddedLlamaServer(s).start()


def test_fixtures_share_one_server_per_settings(tmp_path: Path) -> None:
    from podbrief_testing.llm import acquire_llama, release_llama

    s = settings(tmp_path, executable(tmp_path / "llama-server", FAKE_SERVER))
    a = acquire_llama(s)
    b = acquire_llama(s)
    assert a is b and a.running
    release_llama(a)
    assert b.running  # still held by the other fixture
    release_llama(b)
    assert not a.running


def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A killed service or evaluation (SIGKILL: no cleanup runs) must not leave llama-server holding the CPU."""
    import os
    import signal
    import subprocess
    import time

    binary = executable(tmp_path / "llama-server", FAKE_SERVER)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from podbrief_extraction.llama_server import EmbeddedLlamaServer\n"
        "from podbrief_extraction.settings import EmbeddedLlamaSettings\n"
        f"s = EmbeddedLlamaSettings(binary=Path({str(binary)!r}), gguf=Path({str(gguf)!r}), threads=1)\n"
        "server = EmbeddedLlamaServer(s).start_blocking()\n"
        "print(server._proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        # A child reparented to init is reaped by it; a zombie of ours is not running either.
        with open(f"/proc/{child}/stat") as f:
            if f.read().split()[2] == "Z":
                return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("llama-server outlived the process that started it")
