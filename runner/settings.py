"""Settings of the executor: worker pool, limits, host interfaces, secrets and the debug stream."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from service.config import setting

MiB = 1 << 20
WASM32_MAX_MB = 4096  # a 32-bit linear memory cannot grow past 4 GiB


def cpu_count(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (a container's CPU limit,
    which affinity does not show: a 2-CPU pod on a 64-core node sees 64)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    return max(1, min(cpus, math.ceil(quota)) if quota else cpus)


def _cgroup_quota(root: str) -> float | None:
    """CPU quota ÷ period from cgroup v2 (cpu.max) or v1 (cfs_quota_us, cfs_period_us); None when unlimited."""
    for path, split in ((f"{root}/cpu.max", lambda text: text.split()),
                        (f"{root}/cpu/cpu.cfs_quota_us", None)):
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
            if split is None:
                with open(f"{root}/cpu/cpu.cfs_period_us", encoding="ascii") as f:
                    quota, period = text, f.read().strip()
            else:
                quota, period = split(text)
            if quota in ("max", "-1"):
                return None
            return int(quota) / int(period)
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class DefaultLimits:
    """``RUNTIME_LIMITS``: limits for requests that give none (None = not set there)."""

    timeout_ms: int | None = None
    memory_mb: int | None = None
    fuel: int | None = None

    @classmethod
    def parse(cls, raw: str) -> "DefaultLimits":
        """The reference deployment's JSON, e.g. ``{"memory_mb":512,"timeout_ms":5000,"fuel":null}``."""
        doc = json.loads(raw)
        if not isinstance(doc, dict) or set(doc) - {"timeout_ms", "memory_mb", "fuel"}:
            raise ValueError("RUNTIME_LIMITS must be a JSON object of timeout_ms, memory_mb and fuel")
        for key, value in doc.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"RUNTIME_LIMITS.{key} must be a non-negative integer or null")
        return cls(**doc)


@dataclass(frozen=True)
class RunnerSettings:
    inbound_token: str = setting(
        "EXT_INBOUND_TOKEN", "",
        "When set, /v1/execute requires it (x-runner-service-token or Bearer). Never RUNNER_SERVICE_TOKEN: "
        "Alga's gateway and scheduled jobs send no token.")
    # worker pool
    workers: int = setting("EXT_WORKERS", 0, "Worker processes running components (0 = CPU count).",
                           shown_default="CPU count")
    component_cache_size: int = setting("EXT_COMPONENT_CACHE_SIZE", 16, "Loaded components kept per worker (LRU).")
    queue_size: int = setting("EXT_QUEUE_SIZE", 64,
                              "Executions of one tenant+extension waiting for a worker before 503 runner_busy.")
    queue_timeout_ms: int = setting("EXT_QUEUE_TIMEOUT_MS", 10000, "Longest wait for a free worker.")
    max_workers_per_extension: int = setting(
        "EXT_MAX_WORKERS_PER_EXTENSION", 0,
        "Workers one tenant+extension may hold at once; over it, requests wait in their own queue "
        "(0 = workers - 1, at least 1, so one worker is always left for the others).",
        shown_default="workers - 1")
    max_workers_per_tenant: int = setting(
        "EXT_MAX_WORKERS_PER_TENANT", 0, "Workers one tenant may hold at once, over all its extensions (0 = as "
        "EXT_MAX_WORKERS_PER_EXTENSION).", shown_default="as per extension")
    metrics_max_owners: int = setting(
        "EXT_METRICS_MAX_OWNERS", 100,
        "Tenant+extension pairs with their own pool metric labels per process; later ones are `_other`.")
    default_timeout_ms: int = setting("EXT_DEFAULT_TIMEOUT_MS", 30000,
                                      "Timeout when neither limits.timeout_ms nor RUNTIME_LIMITS gives one.")
    default_memory_mb: int = setting("EXT_DEFAULT_MEMORY_MB", 256,
                                     "Linear memory cap when neither limits.memory_mb nor RUNTIME_LIMITS gives one.")
    runtime_limits: DefaultLimits = setting(
        "RUNTIME_LIMITS", DefaultLimits(),
        "JSON default limits, as the reference's deployment sets them (`{\"memory_mb\":512,\"timeout_ms\":5000,"
        "\"fuel\":null}`); a request's own limits win, and EXT_DEFAULT_* fill what both leave out.",
        parse=DefaultLimits.parse, shown_default="(none)")
    max_timeout_ms: int = setting("EXT_MAX_TIMEOUT_MS", 600000,
                                  "Longest timeout any request gets, whatever it asks (a worker is never held forever).")
    worker_spin_us: int = setting(
        "EXT_WORKER_SPIN_US", 2000,
        "After a call, a worker polls for the next one this long before sleeping (lower latency, some CPU).")
    hard_deadline_grace_ms: int = setting("EXT_HARD_DEADLINE_GRACE_MS", 5000,
                                          "A worker still busy this long after the timeout is killed and replaced.")
    max_request_bytes: int = setting("EXT_MAX_REQUEST_BYTES", 14 * MiB,
                                     "Largest /v1/execute JSON body (413 above).")
    idempotency_max_entries: int = setting("EXT_IDEMPOTENCY_MAX_ENTRIES", 10000, "Stored idempotent responses.")
    idempotency_ttl_s: int = setting("EXT_IDEMPOTENCY_TTL_S", 3600, "How long an idempotent response is replayed.")
    idempotency_redis_url: str = setting(
        "EXT_IDEMPOTENCY_REDIS_URL", "",
        "Redis shared by replicas for idempotent replies (empty: RUNNER_DEBUG_REDIS_URL if set, else in memory).")
    secret_cache_max_entries: int = setting("EXT_SECRET_CACHE_MAX_ENTRIES", 1024,
                                            "Decrypted envelopes kept (30 s TTL).")
    # egress (http.fetch)
    egress_allowlist: tuple[str, ...] = setting(
        "EXT_EGRESS_ALLOWLIST", (),
        "Hosts http.fetch may reach: empty denies all, `*` all, `example.com` + subdomains, `*.example.com`.")
    egress_allow_private: bool = setting("EXT_EGRESS_ALLOW_PRIVATE", False,
                                         "Allow loopback/private/link-local destinations.")
    egress_max_response_bytes: int = setting("EXT_EGRESS_MAX_RESPONSE_BYTES", 8 * MiB, "Largest fetched body.")
    egress_max_requests: int = setting("EXT_EGRESS_MAX_REQUESTS", 50, "Fetches allowed per execution.")
    egress_timeout_ms: int = setting("EXT_EGRESS_TIMEOUT_MS", 30000, "Timeout of one fetch.")
    # host interfaces
    storage_max_value_bytes: int = setting("EXT_STORAGE_MAX_VALUE_BYTES", 1 * MiB, "Largest storage value.")
    ui_proxy_base_url: str = setting("UI_PROXY_BASE_URL", "",
                                     "ui-proxy target (an Alga server's origin); unset = route-not-found, or "
                                     "UI_PROXY_ROUTES_FILE in standalone mode.")
    ui_proxy_routes_file: str = setting("UI_PROXY_ROUTES_FILE", "",
                                        "Standalone mode without UI_PROXY_BASE_URL: ui-proxy answers from this JSON "
                                        "file of routes (`\"GET /api/x\": {\"status\": 200, \"json\": ...}`).")
    ui_proxy_auth_key: str = setting("UI_PROXY_AUTH_KEY", "", "Sent as x-runner-auth on ui-proxy calls.")
    ui_proxy_timeout_ms: int = setting("UI_PROXY_TIMEOUT_MS", 5000, "ui-proxy call timeout.")
    # secrets
    vault_addr: str = setting("VAULT_ADDR", "", "Vault for vault-transit envelopes.", aliases=("ALGA_VAULT_ADDR",))
    vault_token_file: str = setting("ALGA_VAULT_TOKEN_FILE", "/run/secrets/alga_vault_token", "Vault token file.")
    vault_namespace: str = setting("VAULT_NAMESPACE", "", "X-Vault-Namespace header.")
    vault_transit_mount: str = setting("ALGA_VAULT_TRANSIT_MOUNT", "transit",
                                       "Transit mount when the envelope has none.")
    # debug stream
    debug_redis_url: str = setting("RUNNER_DEBUG_REDIS_URL", "",
                                   "Redis for the live debug stream (off when empty).")
    debug_redis_password: str = setting("RUNNER_DEBUG_REDIS_PASSWORD", "", "Injected into the Redis URL.")
    debug_stream_prefix: str = setting("RUNNER_DEBUG_REDIS_STREAM_PREFIX", "ext-debug:", "Stream key prefix.")
    debug_stream_maxlen: int = setting("RUNNER_DEBUG_REDIS_MAXLEN", 2000, "Approximate MAXLEN per stream.")
    debug_max_event_bytes: int = setting("RUNNER_DEBUG_MAX_EVENT_BYTES", 8192,
                                         "Messages are cut at this many bytes.")

    def limits_for(self, timeout_ms: int | None, memory_mb: int | None, fuel: int | None) -> tuple[int, int, int | None]:
        """(timeout, memory, fuel) of an execution: the request's value, else RUNTIME_LIMITS', else EXT_DEFAULT_*
        (no fuel limit by default); the timeout at most EXT_MAX_TIMEOUT_MS, memory at most 4 GiB (wasm32's)."""
        d = self.runtime_limits
        timeout = _first(timeout_ms, d.timeout_ms, self.default_timeout_ms)
        memory = _first(memory_mb, d.memory_mb, self.default_memory_mb)
        return max(1, min(timeout, self.max_timeout_ms)), min(memory, WASM32_MAX_MB), _first(fuel, d.fuel, None)

    def __post_init__(self) -> None:
        if not self.workers:
            object.__setattr__(self, "workers", cpu_count())
        if self.max_workers_per_extension <= 0:
            object.__setattr__(self, "max_workers_per_extension", max(1, self.workers - 1))
        if self.max_workers_per_tenant <= 0:
            object.__setattr__(self, "max_workers_per_tenant", self.max_workers_per_extension)

    @property
    def shared_redis_url(self) -> str:
        """Where replicas share idempotent replies; "" keeps them in this process."""
        if self.idempotency_redis_url:
            return self.idempotency_redis_url
        return redis_url(self.debug_redis_url, self.debug_redis_password) if self.debug_redis_url else ""


def redis_url(url: str, password: str = "") -> str:
    """``url`` with ``password`` injected when the URL has no credentials (reference §5)."""
    url = url.strip()
    if not password:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or "@" in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=f":{quote(password, safe='')}@{parts.netloc}"))


def _first(*values):
    return next((v for v in values if v is not None), None)
