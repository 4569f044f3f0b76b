"""Prometheus metrics as a test sees them: one metric's value scraped from a service's /metrics."""

from __future__ import annotations


def scrape_metric(base_url: str, name: str, *, timeout_s: float = 10.0, **labels: str) -> float:
    """The sum of a metric's samples on a service's /metrics whose labels include `labels`."""
    import httpx

    total = 0.0
    for line in httpx.get(base_url + "/metrics/", timeout=timeout_s).text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
