"""Prometheus metrics for the whole service (GET /metrics).

Under Gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set by gunicorn.conf.py before
anything imports prometheus_client, so the numbers of every Gunicorn process
are summed at scrape time; under ``flask run`` the default registry is used.
"""
from __future__ import annotations

import os
import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
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
# The pool per tenant+extension; label values are bounded by LabelBudget (OTHER for the rest).
OWNER = ["tenant", "extension"]
POOL_QUEUED = Gauge("alga_runner_pool_queued", "Executions waiting for a worker", OWNER, multiprocess_mode="livesum")
POOL_RUNNING = Gauge("alga_runner_pool_running", "Workers held", OWNER, multiprocess_mode="livesum")
POOL_REJECTED = Counter("alga_runner_pool_rejected_total",
                        "Executions refused by the pool: queue_full (503 at once) or queue_timeout (503 after "
                        "EXT_QUEUE_TIMEOUT_MS)", [*OWNER, "reason"])
POOL_TIMEOUTS = Counter("alga_runner_pool_timeouts_total",
                        "Executions that ran past their timeout (or the hard deadline)", OWNER)
OTHER = "_other"


class LabelBudget:
    """Bounded label cardinality: the first ``limit`` distinct label tuples a process sees keep their
    own values (cut to ``max_len`` characters); every later one is reported as ``OTHER``.

    First come rather than top-N because a Prometheus series cannot move between labels once counted;
    the pool only sees tenant+extension pairs that have a bundle, so strangers cannot use up the budget.
    """

    def __init__(self, limit: int, max_len: int = 64):
        self.limit, self.max_len = limit, max_len
        self._known: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __call__(self, *values: str) -> tuple[str, ...]:
        labels = self._known.get(values)
        if labels is None:
            with self._lock:
                if len(self._known) < self.limit:
                    labels = self._known.setdefault(values, tuple(v[:self.max_len] for v in values))
                else:
                    labels = (OTHER,) * len(values)
        return labels


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
