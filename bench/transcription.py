"""Transcription benchmark: plain faster-whisper against the service's engine, same audio, same settings.

    python -m bench.transcription speed [FILE ...]   # RTF, WER: raw, service, batched
    python -m bench.transcription memory --minutes 60  # peak RSS of decoding a long episode
    python -m bench.transcription report                # raw vs the service end to end (event in,
                                                                 # event out) on jfk.flac and a 5-minute
                                                                 # two-voice espeak-ng episode; writes the
                                                                 # "transcription" section of bench/
                                                                 # results.json + RESULTS.md (--out-dir,
                                                                 # --smoke: jfk.flac only)

Each measurement runs in its own process so peak RSS (ru_maxrss) belongs to that run alone. Results are
printed as a Markdown table on stdout."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# ../shared/data/audio from the repository root.
SHARED_AUDIO = REPO.parent / "shared" / "data" / "audio"
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
    from podbrief_testing.transcription import wer

    return wer(reference, hypothesis)


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
        # CPU from here, as the service's figure starts after its model load and warm-up too.
        cpu0 = time.process_time()
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
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments)
        tokens = sum(len(s.tokens) for s in segments)
        elapsed, duration = time.perf_counter() - started, info.duration
    else:
        engine = Transcriber(settings)
        engine.start_sync()
        cpu0 = time.process_time()
        started = time.perf_counter()
        t = engine.transcribe_sync(path)
        elapsed, duration, text = time.perf_counter() - started, t.duration_s, t.text
        tokens = None
    ref = _reference(path)
    row: dict[str, object] = {
        "mode": mode,
        "file": path.name,
        "audio_s": round(duration, 1),
        "wall_s": round(elapsed, 2),
        "rtf": round(elapsed / duration, 4),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "wer": None if ref is None else round(_wer(ref, text), 4),
        "peak_rss_mb": round(_rss_mb()),
    }
    if tokens is not None:
        row["tokens"] = tokens
    return row


def _event(path: Path, threads: int, batch: int) -> dict[str, object]:
    """The service end to end: an EpisodeDiscovered in on the bus, the enclosure served from loopback, and the
    clock stops when EpisodeTranscribed is out. Model load and warm-up happen before, as in production."""
    import asyncio
    import tempfile
    import uuid

    from podbrief.bus import MemoryTransport
    from podbrief.events import EpisodeDiscovered, EpisodeDiscoveredPayload, EpisodeRef, decode, encode, new_event
    from podbrief.events.topics import EPISODE_DISCOVERED, EPISODE_TRANSCRIBED
    from podbrief.settings import BusSettings, DatabaseSettings, NetSettings
    from podbrief_testing import LoopbackServer
    from podbrief_transcription.app import create_app
    from podbrief_transcription.settings import TranscriptionSettings
    from pydantic import SecretStr

    mime = {".flac": "audio/flac", ".wav": "audio/wav", ".opus": "audio/ogg", ".mp3": "audio/mpeg"}[path.suffix]
    audio = path.read_bytes()

    async def run() -> dict[str, object]:
        tmp = Path(tempfile.mkdtemp(prefix="bench-transcribe-"))
        settings = TranscriptionSettings(
            device="cpu",
            cpu_threads=threads,
            batch_size=batch,
            bus=BusSettings(kind="memory"),
            db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp / 't.db'}")),
            net=NetSettings(allowed_networks=("127.0.0.0/8",)),
            data_dir=tmp,
        )
        server = LoopbackServer().start()
        url = server.add("/episode" + path.suffix, audio, mime)
        transport = MemoryTransport()
        await transport.start()
        app = create_app(settings, transport=transport)
        cpu0 = time.process_time()
        try:
            async with app.router.lifespan_context(app):
                eid = uuid.uuid5(uuid.NAMESPACE_URL, url)
                ref = EpisodeRef(
                    episode_id=eid, feed_id=eid, feed_url=url, show="bench", title=path.name, enclosure_url=url
                )
                event = new_event(
                    EpisodeDiscovered,
                    EpisodeDiscoveredPayload(episode=ref, guid=path.name, enclosure_type=mime),
                    key=str(eid),
                    correlation_id=eid,
                )
                cpu0 = time.process_time()
                started = time.perf_counter()
                await transport.send(EPISODE_DISCOVERED, encode(event), key=str(eid).encode())
                while not transport.records(EPISODE_TRANSCRIBED):
                    if transport.records(EPISODE_DISCOVERED + ".dlq"):
                        raise RuntimeError("the episode was dead-lettered")
                    await asyncio.sleep(0.005)
                elapsed = time.perf_counter() - started
                out = decode(transport.records(EPISODE_TRANSCRIBED)[0].value)
                transcript = out.payload.transcript.unpack()  # type: ignore[attr-defined]
        finally:
            server.stop()
        return {
            "elapsed": elapsed,
            "duration": transcript.duration_s,
            "text": transcript.text,
            "cpu": time.process_time() - cpu0,
        }

    r = asyncio.run(run())
    duration, elapsed = float(r["duration"]), float(r["elapsed"])  # type: ignore[arg-type]
    ref_text = _reference(path)
    return {
        "mode": "service (event in, event out)",
        "file": path.name,
        "audio_s": round(duration, 1),
        "wall_s": round(elapsed, 2),
        "rtf": round(elapsed / duration, 4),
        "cpu_s": round(float(r["cpu"]), 2),  # type: ignore[arg-type]
        "wer": None if ref_text is None else round(_wer(ref_text, str(r["text"])), 4),
        "peak_rss_mb": round(_rss_mb()),
    }


def _reference(path: Path) -> str | None:
    if path.name in REFERENCES:
        return REFERENCES[path.name]
    ref = path.with_suffix(".txt")
    return ref.read_text() if ref.exists() else None


def two_voice_episode(dest: Path) -> Path:
    """A ~5-minute two-voice episode: the bundled demo episodes (espeak-ng, a host and a guest voice each)
    back to back with a second of silence between them; the script text is written beside it as the reference."""
    from podbrief_run import demo
    from podbrief_testing.transcription import write_wav
    from podbrief_transcription.adapters.audio import load_all

    parts, texts = [], []
    for ep in demo.episodes():
        parts += [load_all(demo.audio_path(ep)), np.zeros(16_000, dtype=np.float32)]
        texts += [seg["text"] for seg in ep["segments"]]
    dest.with_suffix(".txt").write_text(" ".join(texts))
    return write_wav(dest, np.concatenate(parts))


# Whisper tiny.en (the packaged model): layers, width and vocabulary, from its config.
WHISPER_TINY = {"layers": 4, "d": 384, "ffn": 1536, "mels": 80, "frames": 1500, "vocab": 51864}


def whisper_flops(audio_s: float, tokens: int, beams: int, dims: dict[str, int] = WHISPER_TINY) -> dict[str, float]:
    """Arithmetic of transcribing `audio_s` seconds into `tokens` output tokens with `beams` beams (2 FLOPs per
    multiply-add): the encoder once per 30-s window (two convolutions, then 1,500 positions through each layer),
    the cross-attention keys and values once per window, and per generated token per beam each decoder layer
    (self-attention projections, cross-attention query/output, MLP, attention over the 1,500 encoder frames)
    plus the vocabulary projection. Self-attention over the few tokens generated so far is negligible."""
    from bench.floors import transformer_layer_flops

    d, layers, frames = dims["d"], dims["layers"], dims["frames"]
    windows = audio_s / 30.0
    conv = 2 * frames * dims["mels"] * 3 * d * 2 + frames * d * 3 * d * 2
    encoder = windows * (conv + layers * transformer_layer_flops(d, dims["ffn"], frames))
    cross_kv = windows * layers * 2 * frames * d * d * 2
    per_token = layers * ((4 + 2) * d * d * 2 + 2 * d * dims["ffn"] * 2 + 2 * frames * d * 2) + d * dims["vocab"] * 2
    decoder = tokens * beams * per_token
    return {"encoder": encoder, "cross_kv": cross_kv, "decoder": decoder, "total": encoder + cross_kv + decoder}


def _report(threads: int, batch: int, out_dir: Path, smoke: bool, memory_minutes: float, command: str) -> str:
    from podbrief_transcription.settings import TranscriptionSettings

    from bench.floors import fp32_gemm_gflops, int8_gemm_gops
    from bench.report import Comparison, Floor, update_section

    files = [SHARED_AUDIO / "jfk.flac"]
    if not smoke:
        files.append(two_voice_episode(Path("/tmp/podbrief-two-voice-episode.wav")))
    rows: list[dict[str, object]] = []
    comparisons = []
    peer = "plain faster-whisper"
    for f in files:
        t = str(threads)
        raw = _spawn("_one", "raw", str(f), "--threads", t)
        svc = _spawn("_event", str(f), "--threads", t)
        svc["service/raw"] = round(float(svc["wall_s"]) / max(float(raw["wall_s"]), 1e-9), 3)  # type: ignore[arg-type]
        raw["service/raw"] = ""
        rows += [raw, svc]
        if not smoke:
            batched = _spawn("_one", "raw", str(f), "--threads", t, "--batch", str(batch))
            batched["mode"] = f"raw batched({batch})"
            batched["service/raw"] = ""
            rows.append(batched)
        for metric, key, unit in (
            ("wall time", "wall_s", "s"),
            ("CPU time", "cpu_s", "CPU s"),
            ("peak RSS", "peak_rss_mb", "MB"),
        ):
            comparisons.append(
                Comparison(
                    "transcription",
                    f"{metric}, {f.name} ({raw['audio_s']} s)",
                    unit,
                    float(svc[key]),  # type: ignore[arg-type]
                    peer,
                    float(raw[key]),  # type: ignore[arg-type]
                    "lower",
                    note="service: event in, event out (download, decode, VAD, transcribe, store, publish)"
                    if key == "wall_s"
                    else "",
                )
            )
    details: dict[str, list[dict[str, object]]] = {
        "runs (each in its own process)": [{k: v for k, v in r.items() if k != "tokens"} for r in rows]
    }
    if memory_minutes > 0:
        path = _long_file(memory_minutes, Path("/tmp") / f"bench-{memory_minutes:g}min.wav")
        details[f"audio decoding memory, {memory_minutes:g}-minute file"] = [
            _spawn("_decode", k, str(path)) for k in ("faster_whisper.decode_audio", "windowed iter_windows")
        ]
    # The floor: the model's arithmetic on the longest file at this CPU's int8 GEMM rate on one core.
    settings = TranscriptionSettings()
    raw_long = [r for r in rows if r["mode"] == "raw"][-1]
    svc_long = [r for r in rows if str(r["mode"]).startswith("service")][-1]
    audio_s = float(raw_long["audio_s"])  # type: ignore[arg-type]
    tokens = int(raw_long["tokens"])  # type: ignore[call-overload]
    flops = whisper_flops(audio_s, tokens, settings.beam_size)
    int8 = int8_gemm_gops(threads=1)
    rate, rate_name = (int8, "int8 GEMM (onnxruntime MatMulInteger, 1 thread)")
    if rate is None:
        rate, rate_name = fp32_gemm_gflops(), "fp32 GEMM (numpy BLAS)"
    per_min = 60.0 / audio_s
    floor = flops["total"] * per_min / (rate * 1e9)
    measured = float(svc_long["cpu_s"]) * per_min  # type: ignore[arg-type]
    basis = (
        f"Whisper tiny.en on {svc_long['file']}: encoder {flops['encoder'] / audio_s / 1e9:.2f} + cross-attn K/V "
        f"{flops['cross_kv'] / audio_s / 1e9:.2f} + decoder {flops['decoder'] / audio_s / 1e9:.2f} GFLOP per audio "
        f"second ({tokens} tokens = {tokens / audio_s:.1f}/s, x{settings.beam_size} beams) = "
        f"{flops['total'] * per_min / 1e9:.1f} GFLOP per audio minute, at this CPU's measured {rate:.0f} GOP/s "
        f"{rate_name}; ignores VAD, feature extraction, beam bookkeeping and word alignment"
    )
    floors = [Floor("transcription", "CPU per audio minute", "CPU s", measured, floor, basis)]
    m = rows[0]
    notes = (
        f"Model: packaged Whisper tiny.en, int8, beam {settings.beam_size}, VAD on, word timestamps; each row in its "
        "own process (peak RSS is that process's). The peer is plain faster-whisper with the same model and "
        "settings; the batched row is faster-whisper's BatchedInferencePipeline (a detail, not the service's CPU "
        "default: it raises tiny.en's WER on long audio). GPU not measured here: on paper, faster-whisper's batched "
        "pipeline runs large-v2 at about 46x real time on one RTX 3070 Ti; reproduce with "
        "`TRANSCRIPTION_DEVICE=cuda python -m bench.transcription report --batch 16`."
    )
    update_section(
        "transcription",
        title="Transcription: faster-whisper in the service",
        command=command,
        comparisons=comparisons,
        floors=floors,
        details=details,
        notes=notes,
        extra={"flops": flops, "gemm_gops": rate, "gemm": rate_name, "first_file": m["file"]},
        headline=[
            (
                f"transcription service vs plain faster-whisper, {svc_long['file']} ({audio_s / 60:.1f} min)",
                f"{float(svc_long['wall_s']) / float(raw_long['wall_s']):.2f}x the wall time, "  # type: ignore[arg-type]
                f"{float(svc_long['cpu_s']) / float(raw_long['cpu_s']):.2f}x the CPU (both measured)",  # type: ignore[arg-type]
            )
        ],
        order=20,
        out_dir=out_dir,
    )
    return _table(details["runs (each in its own process)"]) + "\n"


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
        [sys.executable, "-m", "bench.transcription", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _table(rows: list[dict[str, object]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _long_file(minutes: float, dest: Path) -> Path:
    """JFK's 11 s tiled with pauses to `minutes`, as a 16 kHz mono WAV."""
    from podbrief_testing.transcription import write_wav
    from podbrief_transcription.adapters.audio import load_all

    speech = load_all(SHARED_AUDIO / "jfk.flac")
    unit = np.concatenate([speech, np.zeros(16_000, dtype=np.float32)])
    reps = int(minutes * 60 * 16_000 / unit.shape[0]) + 1
    return write_wav(dest, np.tile(unit, reps)[: int(minutes * 60 * 16_000)])


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.transcription")
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
    ev = sub.add_parser("_event")
    ev.add_argument("file", type=Path)
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--batch", type=int, default=1)
    rep = sub.add_parser("report")
    rep.add_argument("--threads", type=int, default=0)
    rep.add_argument("--batch", type=int, default=8)
    rep.add_argument("--out-dir", type=Path, default=REPO / "bench")
    rep.add_argument("--smoke", action="store_true", help="jfk.flac only, no batched run, no memory run")
    rep.add_argument("--memory-minutes", type=float, default=None, help="decode-memory file (default 30; 0 skips)")
    dec = sub.add_parser("_decode")
    dec.add_argument("kind")
    dec.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.cmd == "_one":
        sys.stdout.write(json.dumps(_one(args.mode, args.file, args.threads, args.batch)) + "\n")
    elif args.cmd == "_event":
        sys.stdout.write(json.dumps(_event(args.file, args.threads, args.batch)) + "\n")
    elif args.cmd == "report":
        minutes = args.memory_minutes if args.memory_minutes is not None else (0.0 if args.smoke else 30.0)
        command = "python -m bench.transcription " + " ".join(sys.argv[1:])
        sys.stdout.write(_report(args.threads, args.batch, args.out_dir, args.smoke, minutes, command))
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
