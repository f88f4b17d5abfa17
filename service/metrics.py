"""Prometheus metrics for the whole service (GET /metrics).

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by gunicorn.conf.py before
anything imports prometheus_client, so the numbers of every Gunicorn process
are summed at scrape time; under ``flask run`` the default registry is used.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

EXECUTIONS = Counter("alga_runner_executions_total",
                     "Executions by outcome: ok, or the error code (execute_failed, bundle_fetch_failed, ...)",
                     ["outcome"])
EXECUTION_SECONDS = Histogram("alga_runner_execution_seconds", "Wall time of /v1/execute calls",
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BUSY_REJECTIONS = Counter("alga_runner_busy_rejections_total", "Executions refused with 503 runner_busy")
WORKERS_REPLACED = Counter("alga_runner_workers_replaced_total", "Worker processes that died or hung")
COMPILES = Counter("alga_runner_compiles_total", "Components compiled to precompiled artifacts")
BUNDLE_CACHE = Counter("alga_runner_bundle_cache_total", "Bundle cache lookups by result", ["result"])
EVICTIONS = Counter("alga_runner_cache_evictions_total", "Bundles evicted from the cache")
EVICTED_BYTES = Counter("alga_runner_cache_evicted_bytes_total", "Bytes evicted from the cache")
STATIC_RESPONSES = Counter("alga_runner_static_responses_total", "/ext-ui answers by status", ["status"])
STATIC_BYTES = Counter("alga_runner_static_bytes_served_total", "Body bytes sent by /ext-ui")


_CHILDREN: dict[tuple[int, str], Counter] = {}


def labelled(metric: Counter, value: str) -> Counter:
    """``metric.labels(value)``, resolved once per value: labels() takes a lock and a lookup per call.
    For label values from a small fixed set (statuses, outcome codes)."""
    key = (id(metric), value)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(value)
    return child


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
