"""Transcription benchmark: plain faster-whisper against the service's engine, same audio, same settings.

    python -m podbrief_transcription.bench speed [FILE ...]   # RTF, WER: raw, service, batched
    python -m podbrief_transcription.bench memory --minutes 60  # peak RSS of decoding a long episode
    python -m podbrief_transcription.bench report                # raw vs the service end to end (event in,
                                                                 # event out) on jfk.flac and a 5-minute
                                                                 # two-voice espeak-ng episode; writes
                                                                 # bench/RESULTS.md and bench/results.json

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
    from podbrief_transcription.testing import wer

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
    ref = _reference(path)
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
    from podbrief.testing import LoopbackServer
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


def _two_voice_episode(dest: Path) -> Path:
    """A ~5-minute two-voice episode: the bundled demo episodes (espeak-ng, a host and a guest voice each)
    back to back with a second of silence between them; the script text is written beside it as the reference."""
    from podbrief import demo
    from podbrief_transcription.adapters.audio import load_all
    from podbrief_transcription.testing import write_wav

    parts, texts = [], []
    for ep in demo.episodes():
        parts += [load_all(demo.audio_path(ep)), np.zeros(16_000, dtype=np.float32)]
        texts += [seg["text"] for seg in ep["segments"]]
    dest.with_suffix(".txt").write_text(" ".join(texts))
    return write_wav(dest, np.concatenate(parts))


def _report(threads: int, batch: int, out_dir: Path) -> str:
    import platform
    from datetime import UTC, datetime

    files = [SHARED_AUDIO / "jfk.flac", _two_voice_episode(Path("/tmp/podbrief-two-voice-episode.wav"))]
    rows: list[dict[str, object]] = []
    for f in files:
        t = str(threads)
        raw = _spawn("_one", "raw", str(f), "--threads", t)
        svc = _spawn("_event", str(f), "--threads", t)
        batched = _spawn("_one", "raw", str(f), "--threads", t, "--batch", str(batch))
        batched["mode"] = f"raw batched({batch})"
        svc["service/raw"] = round(float(svc["wall_s"]) / max(float(raw["wall_s"]), 1e-9), 3)  # type: ignore[arg-type]
        batched["service/raw"] = ""
        raw["service/raw"] = ""
        rows += [raw, svc, batched]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    import os

    header = (
        f"## Transcription (`make bench-transcribe`)\n\nMachine: {cpu}, {os.cpu_count()} cores; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; model: packaged Whisper tiny.en, int8, beam 5, VAD on, "
        f"word timestamps; each row in its own process (peak RSS is that process's).\n\n"
    )
    gpu = (
        "\nNot measured here (no GPU): on paper, faster-whisper's batched pipeline runs large-v2 at about 46x "
        "real time on one RTX 3070 Ti, and an A100/H100-class card should give ~100x with large-v3-turbo; "
        "reproduce with `TRANSCRIPTION_DEVICE=cuda python -m podbrief_transcription.bench report --batch 16`.\n"
    )
    text = header + _table(rows) + "\n" + gpu
    out_dir.mkdir(parents=True, exist_ok=True)
    # Other stages keep their sections: replace only this one in RESULTS.md and this key in results.json.
    results = out_dir / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    data["transcription"] = rows
    results.write_text(json.dumps(data, indent=2) + "\n")
    md = out_dir / "RESULTS.md"
    old = md.read_text() if md.exists() else "# Benchmark results (last run on this machine)\n\n"
    start = old.find("## Transcription")
    if start < 0:
        md.write_text(old.rstrip("\n") + "\n\n" + text)
    else:
        nxt = old.find("\n## ", start + 1)
        md.write_text(old[:start] + text + ("" if nxt < 0 else "\n" + old[nxt + 1 :]))
    return text


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
    ev = sub.add_parser("_event")
    ev.add_argument("file", type=Path)
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("--batch", type=int, default=1)
    rep = sub.add_parser("report")
    rep.add_argument("--threads", type=int, default=0)
    rep.add_argument("--batch", type=int, default=8)
    rep.add_argument("--out", type=Path, default=Path("bench"))
    dec = sub.add_parser("_decode")
    dec.add_argument("kind")
    dec.add_argument("file", type=Path)
    args = parser.parse_args()
    if args.cmd == "_one":
        sys.stdout.write(json.dumps(_one(args.mode, args.file, args.threads, args.batch)) + "\n")
    elif args.cmd == "_event":
        sys.stdout.write(json.dumps(_event(args.file, args.threads, args.batch)) + "\n")
    elif args.cmd == "report":
        sys.stdout.write(_report(args.threads, args.batch, args.out))
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
