"""The load sampler the benchmark runner records each section's machine load with (podbrief_testing.machine):
the measured work's CPU is told apart from everything else's, by the mark its processes inherit."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
from podbrief_testing.machine import LoadSampler

pytestmark = pytest.mark.unit

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_a_marked_child_counts_as_the_measured_work() -> None:
    before = _children_cpu()
    with LoadSampler("test", interval_s=0.1) as load:
        subprocess.run([sys.executable, "-c", BUSY], env=load.env(), check=True)
    s = load.stop()
    child = _children_cpu() - before
    assert s.own_cores * s.wall_s >= 0.8 * child
    assert s.samples >= 2 and s.started_at <= s.ended_at
    assert s.load1_min <= s.load1_mean <= s.load1_max
    assert s.busy_cores == pytest.approx(s.own_cores + s.others_cores, abs=0.02)


def test_an_unmarked_child_counts_as_another_process() -> None:
    with LoadSampler("test", interval_s=0.1) as load:
        # Started without the mark, and long-lived enough for the samples to see it.
        subprocess.run([sys.executable, "-c", BUSY], check=True)
    s = load.stop()
    assert s.others_cores * s.wall_s >= 0.4
    assert "other processes" in s.describe()
