"""The e2e benchmark's probe counts a service's children (extraction's llama-server) in its memory, though it
looks for new descendants only every few samples."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.e2e_probe import TreeProbe

pytestmark = pytest.mark.unit

CHILD = "x = bytearray(80_000_000); import time; time.sleep(4)"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}])"


def test_a_child_that_appears_later_is_counted() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    probe = TreeProbe({"svc": parent.pid}, interval_s=0.05, rescan_every=5).start()
    try:
        deadline = time.monotonic() + 10
        while probe.peaks["svc"].children_mb < 70 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        probe.stop()
        parent.wait()
    peak = probe.peaks["svc"]
    assert peak.children_mb >= 70 and peak.total_mb >= peak.main_mb + peak.children_mb - 1
    assert probe.samples > 5
