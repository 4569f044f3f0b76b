"""GPU readiness: the two GPU stages measured as production runs them, beside what the capacity model
(bench/capacity.py) assumes for the GPU they ran on.

    make bench-gpu WHISPER_MODEL=/models/faster-whisper-large-v3-turbo LLM_URL=http://vllm:8000/v1 \\
        LLM_MODEL=Qwen/Qwen2.5-7B-Instruct
    python -m bench.gpu --whisper-model DIR --llm-url URL [--llm-model NAME] [--device cuda]
        [--compute-type float16] [--batch-size 16] [--minutes 30] [--concurrency 32] [--smoke] [--out-dir bench/]

- Transcription: the service's own engine (`Transcriber`) with faster-whisper's batched pipeline, float16 on
  CUDA by default, on any CTranslate2 Whisper model directory, loaded and warmed first as the service does.
  Audio: real speech with reference transcripts (the two-voice demo episode, the LibriVox clips, jfk.flac) put
  end to end and repeated to `--minutes`. Reports the real-time factor (wall / audio), the speed (audio / wall,
  "x real time"), the WER and the GPU memory in use (nvidia-smi, when there is one). Peer: plain faster-whisper
  on the same audio with the same model object and settings.
- Extraction: the service's own path (`Extractor` over every transcript at once through `LLMClient`, with
  `--concurrency` requests in flight so the server can batch) against any OpenAI-compatible server (vLLM in
  production). Reports prompt, completion and total tokens/s from each response's `usage`. Peer: the same
  request bodies sent one at a time.

With no GPU it runs on CPU at smoke size (`--smoke --device cpu --compute-type int8`), which is what the suite
checks (tests/bench/test_gpu_bench.py). Writes the `gpu` section of results.json and RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from podbrief.errors import PipelineError
from rich.console import Console

from bench import report

KEY, TITLE, ORDER = "gpu", "GPU readiness: transcription and extraction on a GPU", 7
REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "data" / "audio"


# --- the GPU -------------------------------------------------------------------------------------------------


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=False
    )
    names = out.stdout.strip().splitlines()
    return names[0].strip() if out.returncode == 0 and names else None


def assumed_kind(name: str | None, kinds: list[str]) -> str | None:
    """The capacity model's GPU kind for a device name ("NVIDIA H100 80GB HBM3" is "H100 SXM")."""
    if not name:
        return None
    squashed = name.upper().replace(" ", "")
    for kind in kinds:
        if kind.split()[0].upper().replace("RTX", "") in squashed:
            return kind
    return None


@dataclass
class MemoryWatch:
    """Peak GPU memory in use (MiB, all processes) sampled with nvidia-smi while a part runs."""

    peak_mib: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemoryWatch:
        if shutil.which("nvidia-smi") is not None:
            self._thread = threading.Thread(target=self._run, name="gpu-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                used = float(out.stdout.strip().splitlines()[0])
                self.peak_mib = max(self.peak_mib or 0.0, used)
            self._stop.wait(0.5)


# --- transcription -------------------------------------------------------------------------------------------


def speech(minutes: float, smoke: bool, work: Path) -> tuple[Path, str]:
    """Real speech and its reference text: jfk.flac alone at smoke size, else the two-voice demo episode, the
    LibriVox clips and jfk.flac end to end, repeated until there are `minutes` of it."""
    from podbrief_testing.transcription import JFK_TEXT, write_wav
    from podbrief_transcription.adapters.audio import load_all

    from bench.transcription import two_voice_episode

    if smoke:
        return SHARED_AUDIO / "jfk.flac", JFK_TEXT
    pieces: list[tuple[np.ndarray, str]] = []
    demo = two_voice_episode(work / "two-voice.wav")
    pieces.append((load_all(demo), demo.with_suffix(".txt").read_text()))
    for clip in sorted((SHARED_AUDIO / "librivox").glob("*.wav")):
        pieces.append((load_all(clip), clip.with_suffix(".txt").read_text()))
    pieces.append((load_all(SHARED_AUDIO / "jfk.flac"), JFK_TEXT))
    gap = np.zeros(16_000, dtype=np.float32)
    audio, text, seconds = [], [], 0.0
    while seconds < minutes * 60:
        for pcm, ref in pieces:
            audio += [pcm, gap]
            text.append(ref)
            seconds += (pcm.size + gap.size) / 16_000
    return write_wav(work / "speech.wav", np.concatenate(audio)), " ".join(text)


def transcription(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from podbrief_testing.transcription import wer
    from podbrief_transcription.adapters.engine import Transcriber
    from podbrief_transcription.settings import TranscriptionSettings

    settings = TranscriptionSettings(
        _env_file=None,  # type: ignore[call-arg]
        model=args.whisper_model,
        device=args.device,
        compute_type=args.compute_type,
        batch_size=args.batch_size,
        cpu_threads=args.threads,
    )
    path, reference = speech(args.minutes, args.smoke, work)
    engine = Transcriber(settings)
    loaded = time.perf_counter()
    engine.start_sync()  # load and warm up, as the service does before it takes work
    load_s = time.perf_counter() - loaded
    with MemoryWatch() as memory:
        started = time.perf_counter()
        t = engine.transcribe_sync(path)
        wall = time.perf_counter() - started
    peer_wall, peer_text = plain_faster_whisper(engine, path)
    return {
        "model": engine.config.label,
        "device": engine.config.device,
        "compute_type": engine.config.compute_type,
        "batch_size": engine.batch_size,
        "beam_size": settings.beam_size,
        "audio_s": round(t.duration_s, 1),
        "wall_s": round(wall, 2),
        "rtf": round(wall / t.duration_s, 5),
        "x_realtime": round(t.duration_s / wall, 1),
        "wer": round(wer(reference, t.text), 4),
        "load_s": round(load_s, 1),
        "gpu_memory_mib": memory.peak_mib,
        "peer_wall_s": round(peer_wall, 2),
        "peer_x_realtime": round(t.duration_s / peer_wall, 1),
        "peer_wer": round(wer(reference, peer_text), 4),
    }


def plain_faster_whisper(engine: Any, path: Path) -> tuple[float, str]:
    """The peer: faster-whisper's own pipeline on the file, same model object, batch, beam, VAD and word
    timestamps, without the service's windowed decoding around it."""
    from faster_whisper import BatchedInferencePipeline
    from podbrief_transcription.adapters.engine import load_model

    model, _ = load_model(engine.config)
    s = engine.settings
    runner = BatchedInferencePipeline(model) if engine.batch_size > 1 else model
    kwargs: dict[str, Any] = {"batch_size": engine.batch_size} if engine.batch_size > 1 else {}
    started = time.perf_counter()
    segments, _info = runner.transcribe(
        str(path), beam_size=s.beam_size, vad_filter=s.vad, word_timestamps=s.word_timestamps, **kwargs
    )
    text = " ".join(seg.text.strip() for seg in segments)
    return time.perf_counter() - started, text


# --- extraction ----------------------------------------------------------------------------------------------


def extraction(args: argparse.Namespace) -> dict[str, Any]:
    from podbrief_extraction.adapters.llm import LLMClient
    from podbrief_extraction.extractor import Extractor

    from bench.extraction import concurrent, items, per_chunk_settings, request_bodies, sequential

    settings = per_chunk_settings()
    llm = settings.llm.model_copy(
        update={"base_url": args.llm_url, "model": args.llm_model, "concurrency": args.concurrency}
    )
    settings = settings.model_copy(update={"llm": llm})
    chosen = items()[: 1 if args.smoke else None]
    with MemoryWatch() as memory:
        r = asyncio.run(concurrent(settings, args.llm_url, chosen))
    u, wall = r["usage"], r["wall_s"]

    async def bodies() -> list[dict[str, Any]]:
        async with LLMClient(settings.llm, base_url=args.llm_url) as client:
            return request_bodies(Extractor(client, settings), chosen)

    peer = sequential(args.llm_url, asyncio.run(bodies()), settings.llm.timeout_s)
    pu = peer["usage"]
    return {
        "server": args.llm_url,
        "model": args.llm_model,
        "concurrency": args.concurrency,
        "transcripts": len(chosen),
        "chunks": r["chunks"],
        "requests": u.requests,
        "failed_chunks": r["failed"],
        "wall_s": round(wall, 2),
        "prompt_tokens": u.prompt_tokens,
        "prompt_tokens_from_cache": r["cached"],
        "completion_tokens": u.completion_tokens,
        "prompt_tokens_per_s": round(u.prompt_tokens / wall, 1),
        "completion_tokens_per_s": round(u.completion_tokens / wall, 1),
        "total_tokens_per_s": round((u.prompt_tokens + u.completion_tokens) / wall, 1),
        "insights_kept": r["insights"],
        "gpu_memory_mib": memory.peak_mib,
        "peer_wall_s": round(peer["wall_s"], 2),
        "peer_requests": pu.requests,
        "peer_total_tokens_per_s": round((pu.prompt_tokens + pu.completion_tokens) / peer["wall_s"], 1),
    }


# --- report --------------------------------------------------------------------------------------------------


def beside_assumptions(tx: dict[str, Any], ex: dict[str, Any], name: str | None) -> list[dict[str, Any]]:
    """Measured against the capacity model: the matched GPU kind's assumptions, or every kind's when the device
    is none of them (a CPU smoke run, another GPU)."""
    from bench.capacity import GPU_KINDS, WHISPER_CHOSEN, WHISPER_REF_GPU, gpu_assumptions

    assumed = gpu_assumptions()
    kind = assumed_kind(name, [*GPU_KINDS, WHISPER_REF_GPU])
    kinds = [kind] if kind else list(assumed)
    rows = []
    for k in kinds:
        a = assumed[k]
        rows.append(
            {
                "GPU kind (capacity model)": k + (" = this device" if k == kind else ""),
                "Whisper x real time, assumed": round(a["whisper_x_realtime"], 1),
                "measured": tx["x_realtime"],
                "measured / assumed": _sig(tx["x_realtime"] / a["whisper_x_realtime"]),
                "LLM tokens/s, assumed": round(a["llm_tokens_per_s"]) if "llm_tokens_per_s" in a else "–",
                "measured ": ex["total_tokens_per_s"],
                "measured / assumed ": (
                    _sig(ex["total_tokens_per_s"] / a["llm_tokens_per_s"]) if "llm_tokens_per_s" in a else "–"
                ),
            }
        )
    rows.append(
        {
            "GPU kind (capacity model)": "what the assumptions are",
            "Whisper x real time, assumed": f"large-v2 {WHISPER_CHOSEN}, beam 5 on the {WHISPER_REF_GPU}, "
            "scaled by memory bandwidth",
            "measured": f"{tx['model']} {tx['compute_type']} batch {tx['batch_size']}, beam {tx['beam_size']}",
            "measured / assumed": "",
            "LLM tokens/s, assumed": "an 8B model on vLLM (prompt + generated), scaled by memory bandwidth",
            "measured ": f"{ex['model']}, {ex['concurrency']} in flight",
            "measured / assumed ": "",
        }
    )
    return rows


def _sig(x: float) -> float:
    """Three significant figures (a CPU smoke run's ratios are tiny)."""
    return float(f"{x:.3g}")


def publish(args: argparse.Namespace, tx: dict[str, Any], ex: dict[str, Any], name: str | None) -> list[dict[str, Any]]:
    rows = beside_assumptions(tx, ex, name)
    device = name or f"no GPU ({tx['device']})"
    comparisons = [
        report.Comparison(
            "transcription",
            f"speed, {tx['audio_s'] / 60:.1f} min of speech",
            "x real time",
            tx["x_realtime"],
            "plain faster-whisper",
            tx["peer_x_realtime"],
            "higher",
            f"WER {tx['wer']} (peer {tx['peer_wer']})",
        ),
        report.Comparison(
            "extraction",
            f"tokens/s (prompt + completion), {ex['chunks']} chunks",
            "tokens/s",
            ex["total_tokens_per_s"],
            "the same requests one at a time",
            ex["peer_total_tokens_per_s"],
            "higher",
            f"{ex['concurrency']} in flight",
        ),
    ]
    report.update_section(
        KEY,
        title=TITLE,
        command="python -m bench.gpu " + " ".join(shlex.quote(a) for a in args.argv),
        comparisons=comparisons,
        details={"beside the capacity model": rows, "transcription": [tx], "extraction": [ex]},
        notes=(
            f"Device: {device}. Transcription: the service's engine (faster-whisper "
            f"{'batched' if tx['batch_size'] > 1 else 'sequential'}, VAD, word timestamps), model loaded and warmed "
            "before the clock; rtf = wall / audio, x real time = audio / wall. Extraction: the service's extractor "
            f"and client against {ex['server']}, {ex['concurrency']} requests in flight, tokens from each response's "
            "`usage`. The capacity model's figures are published runs scaled by memory bandwidth (see CAPACITY.md)."
            + (" A smoke run on CPU: it checks the harness, its figures say nothing about a GPU." if args.smoke else "")
        ),
        extra={"device": device, "transcription": tx, "extraction": ex, "beside_assumptions": rows},
        order=ORDER,
        out_dir=args.out_dir,
    )
    return rows


def print_rows(console: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="measured beside the capacity model's assumptions")
    for col in rows[0]:
        table.add_column(col.strip())
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--whisper-model", required=True, help="a CTranslate2 Whisper model directory (or a size name)")
    ap.add_argument("--llm-url", required=True, help="an OpenAI-compatible endpoint, e.g. http://vllm:8000/v1")
    ap.add_argument("--llm-model", default="default", help="the model name the server answers to")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    ap.add_argument("--compute-type", default=None, help="float16 on CUDA, int8 on CPU (default)")
    ap.add_argument("--batch-size", type=int, default=16, help="faster-whisper batched pipeline (16)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for CTranslate2 (0: all)")
    ap.add_argument("--minutes", type=float, default=30.0, help="minutes of speech to transcribe (30)")
    ap.add_argument("--concurrency", type=int, default=32, help="LLM requests in flight (32)")
    ap.add_argument("--smoke", action="store_true", help="jfk.flac and one transcript: checks the harness")
    ap.add_argument("--out-dir", type=Path, default=report.DEFAULT_DIR)
    args = ap.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    return args


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = parse(argv)
    name = gpu_name()
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        # Before anything slow: the server answers, or the run stops here saying so.
        httpx.get(args.llm_url.rstrip("/") + "/models", timeout=10).raise_for_status()
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/] the LLM server at {args.llm_url} does not answer GET /models: {exc}")
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="podbrief-bench-gpu-") as tmp:
            tx = transcription(args, Path(tmp))
    except PipelineError as exc:  # a model directory that cannot load, a device that is not there
        console.print(f"[red]error:[/] transcription: {exc}")
        return 2
    console.print(f"transcription: {tx}")
    ex = extraction(args)
    console.print(f"extraction: {ex}")
    print_rows(console, publish(args, tx, ex, name))
    return 0 if ex["requests"] > 0 and ex["failed_chunks"] < ex["chunks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
