"""Prometheus metrics: screenings by tier, request latency, errors.

When the server runs several worker processes, `lindung serve` sets PROMETHEUS_MULTIPROC_DIR
before they start (unless it is set: a folder of its own, removed when they have stopped), and
/metrics adds up every process's figures.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

SCREENINGS = Counter(
    "lindung_screenings_total",
    "Cases screened and stored, by tier and channel",
    ["tier", "channel"],
)
LATENCY = Histogram(
    "lindung_request_seconds",
    "Time to answer a request, by route",
    ["route"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
GROUP_CASES = Histogram(
    "lindung_commit_group_cases",
    "Cases screened and stored in one transaction (requests waiting together share one)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
GROUP_SECONDS = Histogram(
    "lindung_commit_group_seconds",
    "Time to screen and store one group of cases, commit included",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ERRORS = Counter("lindung_errors_total", "Requests answered with an error, by status", ["status"])


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
