"""`make bench-gpu` at smoke size, on CPU since no GPU is lent here: the packaged Whisper tiny.en as the CTranslate2
model directory (int8), and SmolLM2-135M on llama-server as the OpenAI-compatible server. It checks the harness
(both stages run through the service's own code, beside their peers and the capacity model's assumptions, into a
well-formed results section), never a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import EmbeddedLlamaSettings, packaged_smollm2
from podbrief_testing.llm import start_llama
from podbrief_transcription.adapters.model_source import packaged_dir

from bench import report
from bench.capacity import GPU_KINDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smollm2() -> Iterator[EmbeddedLlamaServer]:
    server = start_llama(EmbeddedLlamaSettings(gguf=packaged_smollm2(), ctx_size=4096, threads=1))
    yield server
    server.stop()


def test_bench_gpu_runs_on_cpu_at_smoke_size(smollm2: EmbeddedLlamaServer, tmp_path: Path) -> None:
    model_dir = packaged_dir("tiny.en")
    assert (Path(model_dir) / "model.bin").is_file()  # a CTranslate2 model directory, as on a GPU machine
    argv = ["--whisper-model", str(model_dir), "--llm-url", smollm2.base_url, "--llm-model", "SmolLM2-135M-Instruct"]
    argv += ["--device", "cpu", "--compute-type", "int8", "--batch-size", "4", "--concurrency", "2", "--smoke"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu", *argv, "--out-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert report.validate(data) == []
    section = data["sections"]["gpu"]
    tx, ex = section["extra"]["transcription"], section["extra"]["extraction"]
    assert tx["device"] == "cpu" and tx["compute_type"] == "int8" and tx["batch_size"] == 4
    assert tx["audio_s"] == pytest.approx(11.0, abs=0.1)
    assert tx["rtf"] > 0 and tx["x_realtime"] == pytest.approx(1 / tx["rtf"], rel=0.05)
    assert tx["wer"] <= 0.1 and tx["peer_wer"] <= 0.1  # jfk.flac, case and punctuation normalised
    assert ex["requests"] >= 1 and ex["failed_chunks"] < ex["chunks"]
    assert ex["total_tokens_per_s"] > 0 and ex["peer_total_tokens_per_s"] > 0
    assert ex["total_tokens_per_s"] == pytest.approx(
        (ex["prompt_tokens"] + ex["completion_tokens"]) / ex["wall_s"], rel=0.02
    )
    # No GPU here: the figures are printed beside every GPU kind the capacity model sizes.
    rows = section["details"]["beside the capacity model"]
    kinds = {r["GPU kind (capacity model)"] for r in rows}
    assert set(GPU_KINDS) <= kinds
    for r in rows:
        if r["GPU kind (capacity model)"] in GPU_KINDS:
            assert r["Whisper x real time, assumed"] > 0 and r["LLM tokens/s, assumed"] > 0
            ratio = tx["x_realtime"] / r["Whisper x real time, assumed"]
            assert r["measured / assumed"] == pytest.approx(ratio, rel=0.01)
    assert {c["stage"] for c in section["comparisons"]} == {"transcription", "extraction"}
    assert "GPU readiness" in (tmp_path / "RESULTS.md").read_text()
    assert "measured beside the capacity model" in proc.stdout
