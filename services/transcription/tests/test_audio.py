"""Decoding in bounded windows, and every kind of unusable input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from podbrief.errors import PermanentError
from podbrief_testing.transcription import SR, make_video, tone
from podbrief_transcription.adapters.audio import DecodeStats, iter_windows, load_all, probe

pytestmark = pytest.mark.unit


def windows(path: Path, **kw: object) -> tuple[list[tuple[float, np.ndarray]], DecodeStats]:
    stats = DecodeStats()
    opts: dict[str, object] = {"window_s": 600.0, "cut_search_s": 20.0, "max_duration_s": 3600.0, **kw}
    return list(iter_windows(path, stats=stats, **opts)), stats  # type: ignore[arg-type]


def reason(path: Path, **kw: object) -> str:
    with pytest.raises(PermanentError) as exc:
        windows(path, **kw)
    return exc.value.reason


def test_decodes_flac_to_16k_mono(audio_dir: Path) -> None:
    out, stats = windows(audio_dir / "jfk.flac")
    assert len(out) == 1
    offset, pcm = out[0]
    assert offset == 0.0 and pcm.ndim == 1 and pcm.dtype == np.float32
    assert abs(pcm.shape[0] / SR - 11.0) < 0.05
    assert stats.declared_s == pytest.approx(11.0, abs=0.05) and stats.peak > 0.1


@pytest.mark.parametrize("name", ["hotwords.mp3", "stereo_diarization.wav", "multilingual.mp3"])
def test_decodes_other_formats(audio_dir: Path, name: str) -> None:
    _, stats = windows(audio_dir / name)
    assert stats.decoded_s == pytest.approx(stats.declared_s, rel=0.02)


@pytest.mark.parametrize("codec,ext", [("libopus", "opus"), ("libvorbis", "ogg"), ("aac", "m4a")])
def test_decodes_encoded_containers(audio_dir: Path, tmp_path: Path, codec: str, ext: str) -> None:
    import av

    if codec not in av.codecs_available:
        codec = {"libvorbis": "libopus"}.get(codec, codec)
    path = tmp_path / f"jfk.{ext}"
    rate = 48_000 if "opus" in codec else 44_100
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        with av.open(str(audio_dir / "jfk.flac")) as src:
            for frame in src.decode(audio=0):
                for rs in resampler.resample(frame):
                    for packet in stream.encode(rs):
                        out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _, stats = windows(path)
    assert stats.decoded_s == pytest.approx(11.0, abs=0.2)


def test_stereo_split_keeps_channels_apart(write_wav: Callable[..., Path]) -> None:
    left, right = tone(3.0, 300), np.zeros(3 * SR, dtype=np.float32)
    path = write_wav("lr.wav", np.stack([left, right]))
    (out, stats) = windows(path, split_channels=True)
    pcm = out[0][1]
    assert pcm.shape[0] == 2 and stats.channels == 2
    assert np.abs(pcm[0]).max() > 0.2 and np.abs(pcm[1]).max() < 1e-3
    mono, _ = windows(path)
    assert mono[0][1].ndim == 1


def test_long_audio_is_cut_in_quiet_gaps_and_bounded(write_wav: Callable[..., Path]) -> None:
    # 4 minutes of 9 s tone bursts with 1 s gaps; 60 s windows must end inside a gap, never mid-burst.
    burst = np.concatenate([tone(9.0), np.zeros(SR, dtype=np.float32)])
    path = write_wav("long.wav", np.tile(burst, 24))
    out, stats = windows(path, window_s=60.0, cut_search_s=15.0)
    assert len(out) >= 4 and stats.windows == len(out)
    assert stats.max_window_samples <= 60 * SR
    total = 0
    for offset, pcm in out:
        assert offset == pytest.approx(total / SR)
        total += pcm.shape[0]
        position = (offset * SR + pcm.shape[0]) % (10 * SR)
        if offset * SR + pcm.shape[0] < 240 * SR:
            assert position >= 9 * SR or position == 0, "a window was cut inside a tone burst"
    assert total == 240 * SR


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    assert reason(path) == "empty_file"


def test_non_audio_bytes(tmp_path: Path) -> None:
    path = tmp_path / "page.mp3"
    path.write_bytes(b"<html><body>Not Found</body></html>" * 50)
    assert reason(path) == "corrupt_audio"
    random_path = tmp_path / "random.bin"
    random_path.write_bytes(np.random.default_rng(7).bytes(64_000))
    # FFmpeg's probing may take noise for some container; either way it yields no usable audio.
    assert reason(random_path) in {"corrupt_audio", "no_audio_stream"}


@pytest.mark.parametrize("name", ["jfk.flac", "hotwords.mp3", "multilingual.mp3"])
def test_truncated_file(audio_dir: Path, tmp_path: Path, name: str) -> None:
    data = (audio_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    assert reason(path) == "truncated_audio"


def test_silent_file(write_wav: Callable[..., Path]) -> None:
    path = write_wav("silence.wav", np.zeros(5 * SR, dtype=np.float32))
    assert reason(path) == "silent_audio"


def test_too_long_by_header_and_by_decoding(audio_dir: Path) -> None:
    assert reason(audio_dir / "jfk.flac", max_duration_s=5.0) == "too_long"


def test_too_long_without_declared_duration(tmp_path: Path, audio_dir: Path) -> None:
    # A raw ADTS AAC stream declares no duration: the limit must hold while decoding.
    import av

    path = tmp_path / "stream.aac"
    with av.open(str(path), "w", format="adts") as out:
        stream = out.add_stream("aac", rate=44_100)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=44_100)
        with av.open(str(audio_dir / "jfk.flac")) as src:
            for frame in src.decode(audio=0):
                for rs in resampler.resample(frame):
                    for packet in stream.encode(rs):
                        out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert reason(path, max_duration_s=4.0) == "too_long"


def test_video_container_gives_its_audio(audio_dir: Path, tmp_path: Path) -> None:
    path = make_video(tmp_path / "episode.mp4", audio_dir / "jfk.flac", seconds=2.0)
    info = probe(path)
    assert info.container.startswith("mov")
    pcm = load_all(path)
    assert pcm.shape[0] / SR == pytest.approx(11.0, abs=0.2)


def test_video_without_audio(tmp_path: Path) -> None:
    path = make_video(tmp_path / "silent-film.mp4", None)
    assert reason(path) == "no_audio_stream"
