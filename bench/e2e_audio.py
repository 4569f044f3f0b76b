"""The end-to-end benchmark's episodes: two espeak-ng voices per show speaking bench/e2e_scripts.py, with a real
recording from ../shared/data/audio in each, encoded as Ogg/Opus like the demo. Rendered once into a cache
directory keyed by a hash of everything that goes in, so reruns start at once."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench import e2e_scripts as scripts

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "data" / "audio"
CACHE = REPO / ".cache" / "bench-e2e"
# Bump when the way episodes are put together changes, so old renderings are not reused.
LAYOUT_VERSION = 1
WPM = 140
SAMPLE_RATE = 16_000
MIME = "audio/ogg"

# Real speech, each with its reference text; an episode carries one (multilingual.mp3 is left out: tiny.en).
CLIPS: tuple[tuple[str, str], ...] = (
    (
        "jfk.flac",
        "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    ),
    ("librivox/sense_and_sensibility_01_austen_64kb-0870.wav", ""),
    ("stereo_diarization.wav", ""),
    ("librivox/sense_and_sensibility_01_austen_64kb-0880.wav", ""),
    ("hotwords.mp3", ""),
    ("librivox/sense_and_sensibility_01_austen_64kb-0890.wav", ""),
    ("librivox/sense_and_sensibility_01_austen_64kb-0920.wav", ""),
    ("librivox/sense_and_sensibility_01_austen_64kb-0930.wav", ""),
)


@dataclass(frozen=True)
class Episode:
    index: int
    show_slug: str
    show: str
    guid: str
    title: str
    clip: str
    path: Path
    duration_s: float
    words: int


def _render_demo() -> ModuleType:
    """scripts/render_demo.py (not a package): its espeak-ng, resampling and bit-exact Opus code."""
    spec = importlib.util.spec_from_file_location("podbrief_render_demo", REPO / "scripts" / "render_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pool() -> list[dict[str, Any]]:
    """Everything an episode can be made of: the exchanges, and the five demo episodes as guest segments."""
    from podbrief_run import demo

    pool = [
        {"key": f"x{i}", "topic": topic, "lines": [("Host", q), ("Guest", a)]}
        for i, (topic, q, a) in enumerate(scripts.EXCHANGES)
    ]
    for ep in demo.episodes():
        lines = [("Host", f"Here is a segment from our friends at {ep['show']}.")]
        lines += [("Host" if s["speaker"] == "Host" else "Guest", s["text"]) for s in ep["segments"]]
        pool.append({"key": ep["guid"], "topic": "demo", "lines": lines})
    return pool


def _seconds(lines: list[tuple[str, str]]) -> float:
    # espeak-ng at -s 140 speaks ~160 words a minute once render_demo trims each line's silence (measured).
    words = sum(len(text.split()) for _, text in lines)
    return words * 60.0 / 160.0 + 0.6 * len(lines)


def plan(episodes: int, minutes: float, shows: int) -> list[dict[str, Any]]:
    """Which show each episode belongs to and what it says, deterministically. Pool items are used evenly
    (the least used first, the show's favourite topics breaking ties), so a long run repeats each exchange as
    few times as the pool allows, in another show's voices: a syndicated segment, not a copied episode."""
    slugs = list(scripts.SHOWS)[: max(1, min(shows, len(scripts.SHOWS)))]
    pool = _pool()
    used = {item["key"]: 0 for item in pool}
    out = []
    target = minutes * 60.0
    clip_seconds = {name: _clip_pcm(name).size / SAMPLE_RATE for name, _ in CLIPS[: min(episodes, len(CLIPS))]}
    for i in range(episodes):
        slug = slugs[i % len(slugs)]
        title, host, guest, topics = scripts.SHOWS[slug]
        clip, _ = CLIPS[i % len(CLIPS)]
        n = i // len(slugs) + 1
        if target < 90.0:
            # A smoke-sized episode: a greeting and the real clip, nothing else.
            lines: list[tuple[str, str]] = [("Host", f"Welcome to {title}.")]
            after: list[tuple[str, str]] = []
        else:
            lines = [
                ("Host", f"Welcome to {title}, episode {n}. Today we have a guest and a few stories worth your time."),
                ("Host", scripts.CLIP_INTRO),
            ]
            after = [("Host", scripts.CLIP_OUTRO)]
        bye = f"That is all for this episode of {title}. Thank you for listening." if target >= 90 else "Thank you."
        # The clip's real length, the gaps around it and the closing line come off the budget first.
        budget = target - _seconds(lines) - _seconds(after) - _seconds([("Host", bye)]) - clip_seconds[clip] - 1.2
        chosen: list[str] = []
        rank = {t: k for k, t in enumerate(topics)}
        while True:
            # The least used item that still fits (5 s over is allowed), the show's favourite topics first.
            fits = [p for p in pool if p["key"] not in chosen and _seconds(p["lines"]) <= budget + 5.0]
            if not fits:
                break
            best = min(
                fits,
                key=lambda p: (used[p["key"]], rank.get(p["topic"], len(rank)), (hash_key(p["key"]) + i) % 997),
            )
            chosen.append(best["key"])
            used[best["key"]] += 1
            after += best["lines"]
            budget -= _seconds(best["lines"])
        after.append(("Host", bye))
        out.append(
            {
                "index": i,
                "show_slug": slug,
                "show": title,
                "guid": f"{slug}-bench-{i:03d}",
                "title": f"{title} #{n}",
                "voices": {"Host": host, "Guest": guest},
                "before": lines,
                "clip": clip,
                "after": after,
                "items": chosen,
            }
        )
    return out


def hash_key(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def _clip_pcm(name: str) -> np.ndarray:
    from podbrief_transcription.adapters.audio import load_all

    x = np.asarray(load_all(SHARED_AUDIO / name), dtype=np.float32)
    peak = float(np.abs(x).max()) or 1.0
    pcm: np.ndarray = np.clip(np.round(x * (0.8 * 32767 / peak)), -32768, 32767).astype(np.int16)
    return pcm


def _speak(rd: ModuleType, exe: str, lines: list[tuple[str, str]], voices: dict[str, str]) -> np.ndarray:
    episode = {
        "voice": voices["Host"],
        "voices": voices,
        "segments": [{"speaker": who, "text": text} for who, text in lines],
    }
    pcm, _ = rd.render_episode(exe, episode, WPM, rd.DEFAULT_PAUSE_S, rd.DEFAULT_EDGE_S)
    return np.asarray(pcm, dtype=np.int16)


def build(episodes: int, minutes: float, shows: int, cache: Path = CACHE) -> list[Episode]:
    """The episodes' audio files (rendered now or taken from the cache) and what they are."""
    rd = _render_demo()
    exe = rd.find_espeak()
    plans = plan(episodes, minutes, shows)
    clip_ids = {name: (SHARED_AUDIO / name).stat().st_size for name, _ in CLIPS}
    key_src = json.dumps(
        {
            "layout": LAYOUT_VERSION,
            "plans": plans,
            "clips": clip_ids,
            "espeak": rd.espeak_version(exe),
            "wpm": WPM,
            "bitrate": rd.DEFAULT_BITRATE,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    folder = cache / digest
    manifest = folder / "manifest.json"
    if manifest.exists():
        return [Episode(**{**e, "path": folder / e["path"]}) for e in json.loads(manifest.read_text())]
    tmp = cache / f".{digest}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gap = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.int16)
    rows: list[Episode] = []
    for p in plans:
        voices = p["voices"]
        pcm = np.concatenate(
            [
                _speak(rd, exe, p["before"], voices),
                gap,
                _clip_pcm(p["clip"]),
                gap,
                _speak(rd, exe, p["after"], voices),
            ]
        )
        name = f"{p['guid']}.opus"
        (tmp / name).write_bytes(rd.encode_opus(pcm, rd.DEFAULT_BITRATE))
        words = sum(len(t.split()) for _, t in p["before"] + p["after"])
        rows.append(
            Episode(
                index=p["index"],
                show_slug=p["show_slug"],
                show=p["show"],
                guid=p["guid"],
                title=p["title"],
                clip=p["clip"],
                path=Path(name),
                duration_s=round(pcm.size / SAMPLE_RATE, 2),
                words=words,
            )
        )
    (tmp / "manifest.json").write_text(json.dumps([{**asdict(r), "path": str(r.path)} for r in rows], indent=1) + "\n")
    (tmp / "plan.json").write_text(json.dumps(plans, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return [Episode(**{**asdict(r), "path": folder / r.path}) for r in rows]
