"""Transcription metrics, on the app's own registry."""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PHASE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
RTF_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)


@dataclass(frozen=True)
class TranscriptionMetrics:
    audio_seconds: Counter
    real_time_factor: Histogram
    model_load_seconds: Gauge
    failures: Counter
    transcripts: Counter
    download_bytes: Counter
    phase_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TranscriptionMetrics:
        p = "podbrief_transcription"
        return cls(
            audio_seconds=Counter(f"{p}_audio_seconds_total", "Seconds of audio transcribed.", registry=registry),
            real_time_factor=Histogram(
                f"{p}_real_time_factor",
                "Processing seconds per audio second, per job.",
                buckets=RTF_BUCKETS,
                registry=registry,
            ),
            model_load_seconds=Gauge(
                f"{p}_model_load_seconds", "Seconds the Whisper model took to load.", registry=registry
            ),
            failures=Counter(f"{p}_failures_total", "Episodes that failed, by reason.", ["reason"], registry=registry),
            transcripts=Counter(
                f"{p}_transcripts_total", "Transcripts stored, by source.", ["source"], registry=registry
            ),
            download_bytes=Counter(f"{p}_download_bytes_total", "Enclosure bytes downloaded.", registry=registry),
            phase_seconds=Histogram(
                f"{p}_phase_seconds",
                "Wall seconds of one episode's job in each phase (download: the enclosure fetched to a file; "
                "transcribe: decoded and transcribed).",
                ["phase"],
                buckets=PHASE_BUCKETS,
                registry=registry,
            ),
        )

    def observe_job(self, audio_s: float, rtf: float | None) -> None:
        self.audio_seconds.inc(audio_s)
        if rtf is not None:
            self.real_time_factor.observe(rtf)


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


class GpuMemoryCollector(Collector):
    """GPU memory in use, read through NVML (the driver's libnvidia-ml) at scrape time: no nvidia-smi process,
    no torch. Registered only when CUDA devices exist."""

    def __init__(self, devices: int) -> None:
        self.devices = devices
        self._nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if self._nvml.nvmlInit_v2() != 0:
            raise OSError("nvmlInit failed")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily(
            "podbrief_transcription_gpu_memory_used_bytes", "GPU memory in use.", labels=["device"]
        )
        total = GaugeMetricFamily("podbrief_transcription_gpu_memory_total_bytes", "GPU memory.", labels=["device"])
        for i in range(self.devices):
            handle = ctypes.c_void_p()
            mem = _NvmlMemory()
            if self._nvml.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) != 0:
                continue
            if self._nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(mem)) != 0:
                continue
            used.add_metric([str(i)], float(mem.used))
            total.add_metric([str(i)], float(mem.total))
        yield used
        yield total


def register_gpu_memory(registry: CollectorRegistry, devices: int) -> bool:
    """Add the GPU memory gauges when CUDA devices and NVML exist; False (nothing registered) otherwise."""
    if devices <= 0:
        return False
    try:
        registry.register(GpuMemoryCollector(devices))
    except OSError:
        log.warning("CUDA present but NVML unavailable; no GPU memory metrics", extra={"devices": devices})
        return False
    return True
