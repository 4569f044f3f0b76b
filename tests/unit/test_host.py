"""podbrief.host: the machine a figure was measured on, named so that two CPUs with one bare name differ."""

from __future__ import annotations

import pytest
from podbrief import host

pytestmark = pytest.mark.unit

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu avx2 avx512f

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
"""


def test_the_cpu_is_named_with_its_family_and_model() -> None:
    assert host.cpu_name(ZEN4) == "AMD EPYC (family 25 model 17)"
    assert host.cpu_name(ZEN4.replace("model\t\t: 17", "model\t\t: 1").replace(": 25", ": 23")) == (
        "AMD EPYC (family 23 model 1)"
    )


def test_a_cpuinfo_without_family_names_the_model_only_and_an_empty_one_still_names_something() -> None:
    assert host.cpu_name("model name\t: Neoverse-N1\n") == "Neoverse-N1"
    assert host.cpu_name("")


def test_the_description_has_what_results_files_record() -> None:
    d = host.describe()
    assert set(d) == {"cpu", "cores", "memory_gb", "os", "python"}
    assert d["cores"] >= 1 and isinstance(d["cpu"], str)
