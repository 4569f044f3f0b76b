"""How busy the machine was while something was measured: the load average sampled throughout (not just at the
start), the CPU the whole machine used, and how much of it was the measured work's own, so a figure taken while
other work shared the cores says so.

The measured work is every process whose environment carries `PODBRIEF_LOAD_MARK=<mark>` (set it in the
environment of what you start: children inherit it, daemonised ones too), plus the sampling process itself.
Everything else that ran is "others"; steal is time the hypervisor gave to other guests.

    with LoadSampler("bench-delivery") as load:
        subprocess.run(cmd, env={**os.environ, MARK_ENV: load.mark})
    load.summary.as_dict()  # {"started_at": ..., "load1": {"min": ..., "mean": ..., "max": ...}, "others_cores": ...}
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

MARK_ENV = "PODBRIEF_LOAD_MARK"
# Other processes using more than this many cores on average make a measurement "shared", not "quiet".
QUIET_OTHERS_CORES = 0.15
_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class LoadSummary:
    started_at: str  # UTC, ISO 8601
    ended_at: str
    wall_s: float
    samples: int
    cores: int
    load1_min: float
    load1_mean: float
    load1_max: float
    busy_cores: float  # CPU the whole machine used, in cores (busy seconds / wall seconds)
    own_cores: float  # of which the measured work's
    others_cores: float  # of which everything else's
    steal_pct: float  # of the machine's capacity, taken by the hypervisor

    @property
    def quiet(self) -> bool:
        return self.others_cores <= QUIET_OTHERS_CORES and self.steal_pct < 5.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["quiet"] = self.quiet
        return d

    def describe(self) -> str:
        """One line for a report: when, the load average's range and what else used the cores."""
        verdict = "quiet" if self.quiet else "SHARED"
        return (
            f"{self.started_at} → {self.ended_at} ({self.wall_s:,.0f} s); load average (1 min) "
            f"{self.load1_min:.2f}–{self.load1_max:.2f}, mean {self.load1_mean:.2f} over {self.samples} samples; "
            f"CPU busy {self.busy_cores:.2f} of {self.cores} cores, {self.own_cores:.2f} of it the measured work, "
            f"{self.others_cores:.2f} other processes, steal {self.steal_pct:.1f}% ({verdict})"
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _loadavg() -> float:
    try:
        return float((_PROC / "loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def _cpu_ticks() -> tuple[int, int]:
    """(busy, steal) ticks of the whole machine since boot."""
    try:
        fields = [int(x) for x in (_PROC / "stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _proc_ticks(pid: str) -> tuple[int, int] | None:
    """(start time, utime+stime) of one process, in ticks; None when it is gone."""
    try:
        stat = (_PROC / pid / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    rest = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(rest[19]), int(rest[11]) + int(rest[12])
    except (IndexError, ValueError):
        return None


class LoadSampler:
    """Samples every `interval_s` in a background thread between `start()` and `stop()` (or a `with` block)."""

    def __init__(self, name: str, *, interval_s: float = 2.0) -> None:
        self.mark = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
        self.interval_s = interval_s
        self._marker = f"{MARK_ENV}={self.mark}".encode()
        self._self = str(os.getpid())
        self._loads: list[float] = []
        self._own: dict[tuple[str, int], int] = {}  # (pid, start ticks) -> ticks counted so far
        self._not_own: set[tuple[str, int]] = set()
        self._own_ticks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._boot_ticks = 0
        self.summary: LoadSummary | None = None

    def env(self) -> dict[str, str]:
        """os.environ plus the mark, for a child process."""
        return {**os.environ, MARK_ENV: self.mark}

    def start(self) -> LoadSampler:
        self._t0 = time.monotonic()
        self._started_at = _now()
        self._busy0, self._steal0 = _cpu_ticks()
        uptime = float((_PROC / "uptime").read_text().split()[0]) if (_PROC / "uptime").exists() else 0.0
        self._start_tick = int(uptime * _TICK)
        self._sample()
        self._thread = threading.Thread(target=self._run, name=f"load-sampler-{self.mark}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _is_own(self, pid: str) -> bool:
        if pid == self._self:
            return True
        try:
            return self._marker in (_PROC / pid / "environ").read_bytes().split(b"\0")
        except OSError:
            return False

    def _sample(self) -> None:
        self._loads.append(_loadavg())
        try:
            pids = [p.name for p in _PROC.iterdir() if p.name.isdigit()]
        except OSError:
            return
        for pid in pids:
            got = _proc_ticks(pid)
            if got is None:
                continue
            start, ticks = got
            key = (pid, start)
            if key in self._not_own:
                continue
            if key not in self._own:
                if not self._is_own(pid):
                    self._not_own.add(key)
                    continue
                # A process that started while sampling counts whole; one that was already running (this one)
                # counts from now.
                self._own[key] = 0 if start >= self._start_tick else ticks
            self._own_ticks += ticks - self._own[key]
            self._own[key] = ticks

    def stop(self, *, own_cpu_s: float | None = None) -> LoadSummary:
        """Stops sampling. `own_cpu_s`: the measured work's CPU seconds where the caller knows them better (the
        rusage of a waited-for child counts processes too short-lived for a sample); the larger one is used."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy1, steal1 = _cpu_ticks()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy_s = (busy1 - self._busy0) / _TICK
        own_s = max(self._own_ticks / _TICK, own_cpu_s or 0.0)
        loads = self._loads or [0.0]
        self.summary = LoadSummary(
            started_at=self._started_at,
            ended_at=_now(),
            wall_s=round(wall, 1),
            samples=len(self._loads),
            cores=cores,
            load1_min=round(min(loads), 2),
            load1_mean=round(sum(loads) / len(loads), 2),
            load1_max=round(max(loads), 2),
            busy_cores=round(busy_s / wall, 2),
            own_cores=round(min(own_s, busy_s) / wall, 2),
            others_cores=round(max(0.0, busy_s - own_s) / wall, 2),
            steal_pct=round(100.0 * (steal1 - self._steal0) / _TICK / wall / cores, 1),
        )
        return self.summary

    def __enter__(self) -> LoadSampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.summary is None:
            self.stop()
