"""All configuration, read from the environment in one place.

Every setting has the reference runner's name. ``RUNNER_``-prefixed aliases
(the names the seed guide uses) are accepted too; the unprefixed name wins
when both are set. ``Settings`` is frozen and picklable, so the worker
processes get exactly the parent's view, test overrides included.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

log = logging.getLogger("settings")

MiB = 1 << 20


def _text(raw: str) -> str:
    return raw.strip()


def _int(raw: str) -> int:
    return int(raw.strip())


def _opt_int(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    value = int(raw)
    return value if value > 0 else None


def _bool(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in raw.split(",") if p.strip())


@dataclass(frozen=True)
class Setting:
    env: str
    attr: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    fallbacks: tuple[str, ...] = ()


def _cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


SETTINGS: tuple[Setting, ...] = (
    # service
    Setting("PORT", "port", 8085, _int, "Listen port (`make run`, gunicorn)."),
    Setting("HOST", "host", "127.0.0.1", _text, "Listen address; loopback by default (use 0.0.0.0 in containers)."),
    Setting("LOG_LEVEL", "log_level", "info", _text, "Log level of the JSON log lines."),
    Setting("RUNNER_SERVICE_TOKEN", "service_token", "", _text,
            "When set, /v1/execute requires it (x-runner-service-token or Bearer); also the fallback storage token.",
            ("RUNNER_AUTH_TOKEN",)),
    # bundles and cache
    Setting("BUNDLE_STORE_BASE", "bundle_store_base", "var/bundles", _text,
            "Bundle store: a folder, file:// URL or http(s):// base including the bucket."),
    Setting("EXT_CACHE_ROOT", "cache_root", "var/cache", _text, "Extraction cache and precompiled components."),
    Setting("EXT_CACHE_MAX_BYTES", "cache_max_bytes", None, _opt_int,
            "Cache size cap; least recently used idle bundles are evicted."),
    Setting("S3_ACCESS_KEY", "s3_access_key", "", _text, "S3/MinIO access key (enables SigV4).", ("MINIO_ACCESS_KEY",)),
    Setting("S3_SECRET_KEY", "s3_secret_key", "", _text, "S3/MinIO secret key.", ("MINIO_SECRET_KEY",)),
    Setting("S3_REGION", "s3_region", "us-east-1", _text, "S3 signing region."),
    Setting("EXT_BUNDLE_FETCH_TIMEOUT_MS", "bundle_fetch_timeout_ms", 60000, _int, "Bundle download timeout."),
    Setting("EXT_MAX_ARCHIVE_BYTES", "max_archive_bytes", 256 * MiB, _int, "Largest bundle archive downloaded."),
    Setting("EXT_EXTRACT_MAX_ENTRIES", "extract_max_entries", 10000, _int, "Most archive members extracted."),
    Setting("EXT_EXTRACT_MAX_FILE_BYTES", "extract_max_file_bytes", 128 * MiB, _int, "Largest unpacked member."),
    Setting("EXT_EXTRACT_MAX_TOTAL_BYTES", "extract_max_total_bytes", 512 * MiB, _int, "Largest unpacked bundle."),
    # executor
    Setting("EXT_WORKERS", "workers", 0, _int, "Worker processes running components (0 = CPU count)."),
    Setting("EXT_COMPONENT_CACHE_SIZE", "component_cache_size", 16, _int, "Loaded components kept per worker (LRU)."),
    Setting("EXT_QUEUE_SIZE", "queue_size", 64, _int, "Executions waiting for a worker before 503 runner_busy."),
    Setting("EXT_QUEUE_TIMEOUT_MS", "queue_timeout_ms", 10000, _int, "Longest wait for a free worker."),
    Setting("EXT_DEFAULT_TIMEOUT_MS", "default_timeout_ms", 30000, _int, "Timeout when limits.timeout_ms is absent."),
    Setting("EXT_DEFAULT_MEMORY_MB", "default_memory_mb", 256, _int, "Linear memory cap when limits.memory_mb is absent."),
    Setting("EXT_WORKER_SPIN_US", "worker_spin_us", 2000, _int,
            "After a call, a worker polls for the next one this long before sleeping (lower latency, some CPU)."),
    Setting("EXT_HARD_DEADLINE_GRACE_MS", "hard_deadline_grace_ms", 5000, _int,
            "A worker still busy this long after the timeout is killed and replaced."),
    Setting("EXT_MAX_REQUEST_BYTES", "max_request_bytes", 14 * MiB, _int, "Largest /v1/execute JSON body (413 above)."),
    Setting("EXT_IDEMPOTENCY_MAX_ENTRIES", "idempotency_max_entries", 10000, _int, "Stored idempotent responses."),
    Setting("EXT_IDEMPOTENCY_TTL_S", "idempotency_ttl_s", 3600, _int, "How long an idempotent response is replayed."),
    Setting("EXT_SECRET_CACHE_MAX_ENTRIES", "secret_cache_max_entries", 1024, _int, "Decrypted envelopes kept (30 s TTL)."),
    # egress (http.fetch)
    Setting("EXT_EGRESS_ALLOWLIST", "egress_allowlist", (), _csv,
            "Hosts http.fetch may reach: empty denies all, `*` all, `example.com` + subdomains, `*.example.com`."),
    Setting("EXT_EGRESS_ALLOW_PRIVATE", "egress_allow_private", False, _bool,
            "Allow loopback/private/link-local destinations."),
    Setting("EXT_EGRESS_MAX_RESPONSE_BYTES", "egress_max_response_bytes", 8 * MiB, _int, "Largest fetched body."),
    Setting("EXT_EGRESS_MAX_REQUESTS", "egress_max_requests", 50, _int, "Fetches allowed per execution."),
    Setting("EXT_EGRESS_TIMEOUT_MS", "egress_timeout_ms", 30000, _int, "Timeout of one fetch."),
    # Alga server (attached mode)
    Setting("REGISTRY_BASE_URL", "registry_base_url", "", _text, "Alga server origin; unset = standalone mode."),
    Setting("STORAGE_API_BASE_URL", "storage_api_base_url", "", _text,
            "Base of /api/internal/ext-* calls (falls back to REGISTRY_BASE_URL)."),
    Setting("RUNNER_STORAGE_API_TOKEN", "storage_api_token", "", _text,
            "x-runner-auth for /api/internal/ext-* calls (falls back to RUNNER_SERVICE_TOKEN)."),
    Setting("ALGA_AUTH_KEY", "alga_auth_key", "", _text, "x-api-key for /api/installs/* calls."),
    Setting("ALGA_AUTH_KEY_FILE", "alga_auth_key_file", "/vault/secrets/alga_auth_key", _text,
            "File read when ALGA_AUTH_KEY is unset."),
    Setting("EXT_STORAGE_MAX_VALUE_BYTES", "storage_max_value_bytes", 1 * MiB, _int, "Largest storage value."),
    Setting("UI_PROXY_BASE_URL", "ui_proxy_base_url", "", _text, "ui-proxy target; unset = route-not-found."),
    Setting("UI_PROXY_AUTH_KEY", "ui_proxy_auth_key", "", _text, "Sent as x-runner-auth on ui-proxy calls."),
    Setting("UI_PROXY_TIMEOUT_MS", "ui_proxy_timeout_ms", 5000, _int, "ui-proxy call timeout."),
    # secrets
    Setting("VAULT_ADDR", "vault_addr", "", _text, "Vault for vault-transit envelopes.", ("ALGA_VAULT_ADDR",)),
    Setting("ALGA_VAULT_TOKEN_FILE", "vault_token_file", "/run/secrets/alga_vault_token", _text, "Vault token file."),
    Setting("VAULT_NAMESPACE", "vault_namespace", "", _text, "X-Vault-Namespace header."),
    Setting("ALGA_VAULT_TRANSIT_MOUNT", "vault_transit_mount", "transit", _text, "Transit mount when the envelope has none."),
    # debug stream
    Setting("RUNNER_DEBUG_REDIS_URL", "debug_redis_url", "", _text, "Redis for the live debug stream (off when empty)."),
    Setting("RUNNER_DEBUG_REDIS_PASSWORD", "debug_redis_password", "", _text, "Injected into the Redis URL."),
    Setting("RUNNER_DEBUG_REDIS_STREAM_PREFIX", "debug_stream_prefix", "ext-debug:", _text, "Stream key prefix."),
    Setting("RUNNER_DEBUG_REDIS_MAXLEN", "debug_stream_maxlen", 2000, _int, "Approximate MAXLEN per stream."),
    Setting("RUNNER_DEBUG_MAX_EVENT_BYTES", "debug_max_event_bytes", 8192, _int, "Messages are cut at this many bytes."),
    # static UI
    Setting("EXT_STATIC_STRICT_VALIDATION", "static_strict_validation", True, _bool,
            "Require a tenant and a valid install for /ext-ui."),
    Setting("EXT_STATIC_MAX_FILE_BYTES", "static_max_file_bytes", None, _opt_int, "Largest served asset (413 above)."),
    Setting("EXT_UI_CONTENT_SECURITY_POLICY", "ui_csp", "", _text, "Replaces the HTML Content-Security-Policy."),
    Setting("EXT_UI_FRAME_ANCESTORS", "ui_frame_ancestors", "", _text, "Appends frame-ancestors to the default CSP."),
    # standalone mode
    Setting("EXT_REGISTRY_DB", "registry_db", "var/registry.db", _text, "SQLite registry (standalone mode)."),
    Setting("EXT_DEFAULT_TENANT", "default_tenant", "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52", _text,
            "Tenant used when a standalone request names none (the seed's DEV_TENANT_ID)."),
    Setting("EXT_SECRETS_KEY_FILE", "secrets_key_file", "var/secrets.key", _text,
            "Local key encrypting install secrets at rest (created when missing)."),
    Setting("EXT_SCHEDULER_ENABLED", "scheduler_enabled", True, _bool, "Run stored schedules (standalone mode)."),
    Setting("EXT_SCHEDULER_TICK_MS", "scheduler_tick_ms", 1000, _int, "How often the scheduler looks for due runs."),
    Setting("EXT_UI_BRIDGE_ANY_ORIGIN", "ui_bridge_any_origin", False, _bool,
            "Development only: the host page accepts bridge messages from any origin (the source check stays)."),
    Setting("EXT_INSTALL_SAMPLES", "install_samples", False, _bool, "Install the sample extensions at start."),
)

_BY_ATTR = {s.attr: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The parsed configuration. Build with :meth:`from_env`."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict:
        return dict(self.values)

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "values", state)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            values[s.attr] = _read(s, environ)
        unknown = set(overrides) - set(_BY_ATTR)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        values.update(overrides)
        if not values["workers"]:
            values["workers"] = _cpu_count()
        if not values["alga_auth_key"]:  # read once here: auth_key is on the request path
            values["alga_auth_key"] = _read_secret_file(values["alga_auth_key_file"])
        return cls(values)

    def replace(self, **overrides: Any) -> "Settings":
        return Settings({**self.values, **overrides})

    # Derived values used by several packages.
    @property
    def standalone(self) -> bool:
        return not self.registry_base_url

    @property
    def internal_api_base(self) -> str:
        """Base of /api/internal/ext-* calls: trailing '/' and one trailing '/api' removed."""
        base = (self.storage_api_base_url or self.registry_base_url).strip().rstrip("/")
        return base[: -len("/api")] if base.endswith("/api") else base

    @property
    def internal_api_token(self) -> str:
        return self.storage_api_token or self.service_token

    @property
    def auth_key(self) -> str:
        return self.alga_auth_key


def _read_secret_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _read(s: Setting, environ: Mapping[str, str]) -> Any:
    names = [s.env, *s.fallbacks]
    names += [f"RUNNER_{n}" for n in names if not n.startswith("RUNNER_")]
    for name in names:
        raw = environ.get(name)
        if raw is None or (raw.strip() == "" and s.parse is not _text):
            continue
        try:
            return s.parse(raw)
        except ValueError:
            log.warning("ignoring invalid %s=%r; using the default %r", name, raw, s.default)
            return s.default
    return s.default


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """EXT_*/RUNNER_* variables nothing reads: most often a typo."""
    known = set()
    for s in SETTINGS:
        for n in (s.env, *s.fallbacks):
            known.add(n)
            known.add(f"RUNNER_{n}")
    known |= {"RUNNER_BASE_URL", "RUNNER_PUBLIC_BASE", "RUNNER_BACKEND", "RUNNER_DOCKER_HOST"}
    return sorted(n for n in environ if n.startswith(("EXT_", "RUNNER_")) and n not in known)


def markdown_table() -> str:
    """The README's configuration table, generated from SETTINGS."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for s in SETTINGS:
        names = " / ".join(f"`{n}`" for n in (s.env, *s.fallbacks))
        default = s.default
        if isinstance(default, tuple):
            default = ",".join(default) or "(empty)"
        if s.attr == "workers":
            default = "CPU count"
        rows.append(f"| {names} | `{default}` | {s.help} |")
    return "\n".join(rows)


__all__ = ["Settings", "SETTINGS", "unknown_names", "markdown_table"]
