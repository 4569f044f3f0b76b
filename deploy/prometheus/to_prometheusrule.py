"""Writes k8s/base/prometheusrule.yaml (a Prometheus Operator PrometheusRule) from deploy/prometheus/alerts.yml,
so docker-compose and Kubernetes alert on the same rules. tests/deploy fails when the two drift apart.
Run: python deploy/prometheus/to_prometheusrule.py"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy/prometheus/alerts.yml"
TARGET = ROOT / "k8s/base/prometheusrule.yaml"
HEADER = "# Generated from deploy/prometheus/alerts.yml by deploy/prometheus/to_prometheusrule.py; do not edit.\n"


def build() -> dict[str, object]:
    rules = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "podbrief", "labels": {"release": "prometheus"}},
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line PromQL stays a readable block scalar.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    return HEADER + yaml.dump(build(), Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    sys.stderr.write(f"wrote {TARGET}\n")
