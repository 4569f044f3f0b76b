"""CPU time and resident memory of each service's process tree (extraction's llama-server is its child, so it
counts in extraction), read with psutil: CPU on demand, RSS sampled every half second for the peak. Finding a
tree's descendants scans every process on the machine, so the sampler looks for new ones every few seconds only
(they appear at startup: llama-server), keeping the probe's own CPU small on a 2-core machine."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil


@dataclass
class Peak:
    total_mb: float = 0.0  # the process and all its descendants at one instant
    main_mb: float = 0.0  # the service's own Python process
    children_mb: float = 0.0  # its descendants (llama-server for extraction)


@dataclass
class TreeProbe:
    pids: dict[str, int]
    interval_s: float = 0.5
    # Samples between two scans for descendants.
    rescan_every: int = 10
    peaks: dict[str, Peak] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _procs: dict[str, psutil.Process] = field(default_factory=dict)
    _trees: dict[str, list[psutil.Process]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        self.peaks = {name: Peak() for name in self.pids}

    @staticmethod
    def _tree(proc: psutil.Process) -> list[psutil.Process]:
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return [proc]

    def cpu_s(self, name: str) -> float:
        """User + system seconds of the service's process and every live descendant, plus what its reaped
        children used (psutil's children_user/children_system)."""
        proc = self._procs[name]
        total = 0.0
        for i, p in enumerate(self._tree(proc)):
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
            if i == 0:
                total += t.children_user + t.children_system
        return total

    def cpu_all(self) -> dict[str, float]:
        return {name: self.cpu_s(name) for name in self._procs}

    def sample(self) -> None:
        if self.samples % self.rescan_every == 0:
            self._trees = {name: self._tree(proc) for name, proc in self._procs.items()}
        for name in self._procs:
            main = children = 0.0
            for i, p in enumerate(self._trees[name]):
                try:
                    rss = p.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if i == 0:
                    main = rss
                else:
                    children += rss
            peak = self.peaks[name]
            peak.main_mb = max(peak.main_mb, main)
            peak.children_mb = max(peak.children_mb, children)
            peak.total_mb = max(peak.total_mb, main + children)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> TreeProbe:
        self._thread = threading.Thread(target=self._run, name="bench-e2e-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
