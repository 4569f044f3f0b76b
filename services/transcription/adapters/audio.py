"""Audio decoding through PyAV, in bounded windows.

faster-whisper's `decode_audio` turns a whole file into one float32 array (an hour at 16 kHz is 230 MB, and
it holds the int16 copy and the chunk list at the same time). Here the file is decoded as a stream and
handed out in windows of `window_s` seconds, each cut at the quietest quarter-second of its last
`cut_search_s`, so a cut rarely splits a word and memory per job is bounded by the window, not the episode.

Every way a file can be unusable maps onto PermanentError with a short `reason`: empty_file, corrupt_audio,
no_audio_stream, too_long, truncated_audio, silent_audio.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from podbrief.errors import PermanentError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# Peak amplitude under which a whole file counts as silent (about -66 dBFS): digital silence, or hiss.
SILENCE_PEAK = 5e-4
# Decoded audio shorter than this share of the declared duration means the file was cut short.
TRUNCATION_RATIO = 0.9
# Decoded frames are resampled in blocks of about this many source samples (about 10 s at 48 kHz).
GROUP_SAMPLES = 500_000

Audio = npt.NDArray[np.float32]


@dataclass
class AudioInfo:
    duration_s: float | None
    channels: int
    codec: str
    container: str


@dataclass
class DecodeStats:
    """Filled in while windows are read; final once the iterator is exhausted."""

    samples: int = 0
    peak: float = 0.0
    invalid_packets: int = 0
    windows: int = 0
    max_window_samples: int = 0
    declared_s: float | None = None
    channels: int = 1
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def decoded_s(self) -> float:
        return self.samples / SAMPLE_RATE


def probe(path: Path) -> AudioInfo:
    """Open the file and describe its first audio stream; PermanentError when that is impossible."""
    import av

    if not path.exists() or path.stat().st_size == 0:
        raise PermanentError("the audio file is empty (0 bytes)", reason="empty_file")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise PermanentError("the file has no audio stream", reason="no_audio_stream")
            stream = container.streams.audio[0]
            return AudioInfo(
                duration_s=_declared_duration(container, stream),
                channels=stream.channels or 1,
                codec=stream.codec_context.name,
                container=container.format.name,
            )
    except PermanentError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise PermanentError(f"cannot read audio: {exc}", reason="corrupt_audio") from exc


def _declared_duration(container: object, stream: object) -> float | None:
    duration = getattr(container, "duration", None)
    if duration:
        return float(duration) / 1_000_000  # AV_TIME_BASE
    sd, tb = getattr(stream, "duration", None), getattr(stream, "time_base", None)
    if sd and tb:
        return float(sd * tb)
    return None


def _quietest_cut(buf: Audio, search: int) -> int:
    """Index in the last `search` samples of `buf` (mono or (channels, n)) at the centre of the quietest
    quarter-second, measured on all channels together."""
    mono = buf if buf.ndim == 1 else np.abs(buf).max(axis=0)
    n = mono.shape[-1]
    start = max(0, n - search)
    tail = np.abs(mono[start:])
    frame = SAMPLE_RATE // 4
    usable = (tail.shape[0] // frame) * frame
    if usable == 0:
        return int(n)
    energy = tail[:usable].reshape(-1, frame).mean(axis=1)
    best = int(np.argmin(energy))
    return int(start + best * frame + frame // 2)


def iter_windows(
    path: Path,
    *,
    window_s: float,
    cut_search_s: float,
    max_duration_s: float,
    split_channels: bool = False,
    stats: DecodeStats | None = None,
) -> Iterator[tuple[float, Audio]]:
    """Yield (offset_s, samples) windows of 16 kHz float32 audio. Mono unless `split_channels` and the file is
    stereo, then shape (2, n). Raises PermanentError for unusable input (see the module docstring)."""
    import av

    info = probe(path)
    stats = stats if stats is not None else DecodeStats()
    stats.declared_s = info.duration_s
    if info.duration_s is not None and info.duration_s > max_duration_s:
        raise PermanentError(
            f"the audio is {info.duration_s:.0f}s long, over the {max_duration_s:.0f}s limit",
            reason="too_long",
        )
    stereo = split_channels and info.channels >= 2
    stats.channels = 2 if stereo else 1
    window = int(window_s * SAMPLE_RATE)
    search = int(cut_search_s * SAMPLE_RATE)
    limit = int(max_duration_s * SAMPLE_RATE)
    pending: list[Audio] = []
    pending_n = 0
    offset = 0  # samples already yielded

    def take(count: int) -> Audio:
        nonlocal pending, pending_n
        buf = np.concatenate(pending, axis=-1)
        head, rest = buf[..., :count], buf[..., count:]
        pending = [rest] if rest.shape[-1] else []
        pending_n = rest.shape[-1]
        return np.ascontiguousarray(head)

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise PermanentError(f"cannot read audio: {exc}", reason="corrupt_audio") from exc
    try:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo" if stereo else "mono", rate=SAMPLE_RATE)
        for frame in _frames(container, stream, stats):
            for out in resampler.resample(frame):
                arr = out.to_ndarray()
                chunk: Audio = (arr if stereo else arr[0]).astype(np.float32, copy=False)
                n = chunk.shape[-1]
                if n == 0:
                    continue
                stats.samples += n
                stats.peak = max(stats.peak, float(np.abs(chunk).max()))
                if stats.samples > limit:
                    raise PermanentError(f"the audio runs past the {max_duration_s:.0f}s limit", reason="too_long")
                pending.append(chunk)
                pending_n += n
                if pending_n >= window:
                    buf = take(pending_n)
                    cut = _quietest_cut(buf[..., :window], search)
                    # A copy: a view would keep the whole window's buffer alive while the next one fills.
                    pending = [buf[..., cut:].copy(), *pending]
                    pending_n = buf.shape[-1] - cut
                    head = np.ascontiguousarray(buf[..., :cut])
                    del buf
                    stats.windows += 1
                    stats.max_window_samples = max(stats.max_window_samples, head.shape[-1])
                    yield offset / SAMPLE_RATE, head
                    offset += head.shape[-1]
        for out in resampler.resample(None):
            arr = out.to_ndarray()
            chunk = (arr if stereo else arr[0]).astype(np.float32, copy=False)
            if chunk.shape[-1]:
                stats.samples += chunk.shape[-1]
                stats.peak = max(stats.peak, float(np.abs(chunk).max()))
                pending.append(chunk)
                pending_n += chunk.shape[-1]
        if pending_n:
            head = take(pending_n)
            stats.windows += 1
            stats.max_window_samples = max(stats.max_window_samples, head.shape[-1])
            yield offset / SAMPLE_RATE, head
    except PermanentError:
        raise
    except (av.error.FFmpegError, ValueError) as exc:
        raise PermanentError(f"cannot decode audio: {exc}", reason="corrupt_audio") from exc
    finally:
        container.close()
    check_complete(stats)


def _frames(container: Any, stream: Any, stats: DecodeStats) -> Iterator[Any]:
    """Decode packet by packet, skipping packets FFmpeg rejects (a damaged frame in a long file should not
    lose the episode; the truncation check afterwards catches files where too much was lost), and group the
    small decoded frames into blocks of about GROUP_SAMPLES: resampling frame by frame costs more in Python
    overhead than the decoding itself."""
    import av
    from av.audio.fifo import AudioFifo

    fifo = AudioFifo()
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.error.InvalidDataError:
            stats.invalid_packets += 1
            continue
        for frame in decoded:
            frame.pts = None  # the fifo checks timestamps for gaps; invalid packets leave some
            fifo.write(frame)
            if fifo.samples >= GROUP_SAMPLES:
                yield fifo.read()
    if fifo.samples > 0:
        yield fifo.read()


def check_complete(stats: DecodeStats) -> None:
    if stats.samples == 0:
        raise PermanentError("no audio could be decoded from the file", reason="corrupt_audio")
    declared = stats.declared_s
    if declared and declared > 2.0 and stats.decoded_s < declared * TRUNCATION_RATIO:
        raise PermanentError(
            f"the file is truncated: {stats.decoded_s:.1f}s decoded of {declared:.1f}s declared",
            reason="truncated_audio",
        )
    if stats.peak < SILENCE_PEAK:
        raise PermanentError("the audio is silent", reason="silent_audio")


def load_all(path: Path, *, max_duration_s: float = 24 * 3600.0) -> Audio:
    """The whole file as one mono array (for short clips: tests and warm-up)."""
    parts = [w for _, w in iter_windows(path, window_s=7200.0, cut_search_s=1.0, max_duration_s=max_duration_s)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
