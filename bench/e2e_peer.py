"""The transcription stage's peer: plain faster-whisper on the same episode files with the service's own engine
settings (model, compute type, beam, VAD, word timestamps, threads), in a process of its own. The clock and the
CPU count start after the model is loaded and warmed, as the service's do.

    python -m bench.e2e_peer FILE [FILE ...]   # prints one JSON object
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def run(files: list[Path]) -> dict[str, float]:
    from podbrief_transcription.adapters.engine import engine_config, load_model
    from podbrief_transcription.settings import TranscriptionSettings

    settings = TranscriptionSettings(device="cpu")
    model, _ = load_model(engine_config(settings))
    for _ in model.transcribe(np.zeros(16_000, dtype=np.float32), beam_size=1, vad_filter=False)[0]:
        pass  # the same warm-up the service does before it is ready
    cpu0, wall0 = time.process_time(), time.perf_counter()
    audio_s = 0.0
    for f in files:
        segments, info = model.transcribe(
            str(f),
            beam_size=settings.beam_size,
            vad_filter=settings.vad,
            word_timestamps=settings.word_timestamps,
            language=settings.language,
        )
        for _ in segments:
            pass
        audio_s += float(info.duration)
    peak_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return {
        "audio_s": round(audio_s, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "wall_s": round(time.perf_counter() - wall0, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e_peer")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(run(args.files)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
