"""The machine a figure was measured on, named once for every tool that records one (the benchmarks, the
extraction eval, the container run): the CPU as /proc/cpuinfo names it, with its family and model, since a VM's
name can be as bare as "AMD EPYC" for CPUs years apart (family 23 model 1 is the first Zen, family 25 model 17
a Zen 4), and the cores this process may use."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")
_MEMINFO = Path("/proc/meminfo")


def cpu_name(cpuinfo: str | None = None) -> str:
    """ "AMD EPYC (family 25 model 17)": the first processor's model name, family and model, from /proc/cpuinfo
    (or the text given); the platform's name for its architecture where there is none."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text(encoding="utf-8")
        except OSError:
            cpuinfo = ""
    info: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    name = info.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    if info.get("cpu family") and info.get("model"):
        name += f" (family {info['cpu family']} model {info['model']})"
    return name


def usable_cores() -> int:
    """The cores this process may run on (its affinity), which a container or taskset can make fewer than the
    machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def memory_gb() -> float | None:
    try:
        for line in _MEMINFO.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe() -> dict[str, Any]:
    """The machine as results files record it."""
    return {
        "cpu": cpu_name(),
        "cores": usable_cores(),
        "memory_gb": memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
    }
