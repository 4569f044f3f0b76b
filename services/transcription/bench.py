"""Transcription benchmark: plain faster-whisper against the service's engine, same audio, same settings.

    python -m podbrief_transcription.bench speed [FILE ...]   # RTF, WER: raw, service, batched
    python -m podbrief_transcription.bench memory --minutes 60  # peak RSS of decoding a long episode

Each measurement runs in its own process so peak RSS (ru_maxrss) belongs to that run alone. Results are
printed as a Markdown table on stdout."""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# ../shared/data/audio from the repository root.
SHARED_AUDIO = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio"
REFERENCES = {
    "jfk.flac": "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
    "for your country.",
}


def _rss_mb() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across
    fork and exec, so a child of a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _wer(reference: str, hypothesis: str) -> float:
    ref = re.sub(r"[^\w\s]", " ", reference.lower()).split()
    hyp = re.sub(r"[^\w\s]", " ", hypothesis.lower()).split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


def _one(mode: str, path: Path, threads: int, batch: int) -> dict[str, object]:
    from podbrief_transcription.adapters.engine import Transcriber, engine_config, load_model
    from podbrief_transcription.settings import TranscriptionSettings

    settings = TranscriptionSettings(device="cpu", cpu_threads=threads, batch_size=batch if mode != "raw" else 1)
    cpu0 = time.process_time()
    if mode == "raw":
        from faster_whisper import BatchedInferencePipeline

        model, _ = load_model(engine_config(settings))
        for _ in model.transcribe(np.zeros(16_000, dtype=np.float32), beam_size=1, vad_filter=False)[0]:
            pass  # the same warm-up the service does
        started = time.perf_counter()
        runner = BatchedInferencePipeline(model) if batch > 1 else model
        kwargs = {"batch_size": batch} if batch > 1 else {}
        segments, info = runner.transcribe(
            str(path),
            beam_size=settings.beam_size,
            vad_filter=settings.vad,
            word_timestamps=settings.word_timestamps,
            **kwargs,
        )
        text = " ".join(s.text.strip() for s in segments)
        elapsed, duration = time.perf_counter() - started, info.duration
    else:
        engine = Transcriber(settings)
        engine.start_sync()
        started = time.perf_counter()
        t = engine.transcribe_sync(path)
        elapsed, duration, text = time.perf_counter() - started, t.duration_s, t.text
    ref = REFERENCES.get(path.name)
    return {
        "mode": mode,
        "file": path.name,
        "audio_s": round(duration, 1),
        "wall_s": round(elapsed, 2),
        "rtf": round(elapsed / duration, 4),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "wer": None if ref is None else round(_wer(ref, text), 4),
        "peak_rss_mb": round(_rss_mb()),
    }


def _decode(kind: str, path: Path) -> dict[str, object]:
    started = time.perf_counter()
    if kind == "faster_whisper.decode_audio":
        from faster_whisper.audio import decode_audio

        samples = int(decode_audio(str(path)).shape[0])
    else:
        from podbrief_transcription.adapters.audio import iter_windows

        samples = sum(w.shape[-1] for _, w in iter_windows(path, window_s=600.0, cut_search_s=20.0, max_duration_s=1e9))
    return {
        "decoder": kind,
        "audio_s": round(samples / 16_000),
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(_rss_mb()),
    }


def _spawn(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "podbrief_transcription.bench", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _long_file(minutes: float, dest: Path) -> Path:
    """JFK's 11 s tiled with pauses to `minutes`, as a 16 kHz mono WAV."""
    from podbrief_transcription.adapters.audio import load_all
    from podbrief_transcription.testing import write_wav

    speech = load_all(SHARED_AUDIO / "jfk.flac")
    unit = np.concatenate([speech, np.zeros(16_000, dtype=np.float32)])
    reps = int(minutes * 60 * 16_000 / unit.shape[0]) + 1
    return write_wav(dest, np.tile(unit, reps)[: int(minutes * 60 * 16_000)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="podbrief_transcription.bench")
    sub = parser.add_subparsers(dest="cmd", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("files", nargs="*", type=Path)
    speed.add_argument("--threads", type=int, default=0)
    speed.add_argument("--batch", type=int, default=8)
    memory = sub.add_parser("memory")
    memory.add_argument("--minutes", type=float, default=60.0)
    memory.add_argument("--dir", type=Path, default=Path("/tmp"))
    tile = sub.add_parser("tile", help="write JFK tiled to N minutes as a WAV (a longer speed input)")
    tile.add_argument("minutes", type=float)
    tile.add_argument("dest", type=Path)
    one = sub.add_parser("_one")
    one.add_argument("mode")
    one.add_argument("file", type=Path)
    one.add_argument("--threads", type=int, default=0)
    one.add_argument("--batch", type=int, default=1)
    dec = sub.add_parser("_decode")
    dec.add_argument("kind")
    dec.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.cmd == "_one":
        sys.stdout.write(json.dumps(_one(args.mode, args.file, args.threads, args.batch)) + "\n")
    elif args.cmd == "tile":
        sys.stdout.write(str(_long_file(args.minutes, args.dest)) + "\n")
    elif args.cmd == "_decode":
        sys.stdout.write(json.dumps(_decode(args.kind, args.file)) + "\n")
    elif args.cmd == "speed":
        rows = []
        for f in args.files or [SHARED_AUDIO / "jfk.flac"]:
            t = str(args.threads)
            rows.append(_spawn("_one", "raw", str(f), "--threads", t))
            rows.append(_spawn("_one", "service", str(f), "--threads", t))
            rows.append(_spawn("_one", "raw", str(f), "--threads", t, "--batch", str(args.batch)))
            rows[-1]["mode"] = f"raw batched({args.batch})"
            rows.append(_spawn("_one", "service", str(f), "--threads", t, "--batch", str(args.batch)))
            rows[-1]["mode"] = f"service batched({args.batch})"
        sys.stdout.write(_table(rows) + "\n")
    else:
        path = _long_file(args.minutes, args.dir / f"bench-{args.minutes:g}min.wav")
        rows = [_spawn("_decode", k, str(path)) for k in ("faster_whisper.decode_audio", "windowed iter_windows")]
        sys.stdout.write(_table(rows) + "\n")


if __name__ == "__main__":
    main()
