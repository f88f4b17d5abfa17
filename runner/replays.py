"""Idempotent replies: an execute with an ``x-idempotency-key`` answered once is answered the same again.

Scoped by tenant and extension, kept ``EXT_IDEMPOTENCY_TTL_S``. In memory (bounded LRU) for one
process; in Redis when a URL is configured, so every replica behind a load balancer replays what
any of them answered. Redis trouble never fails an execution: a read error is a miss, a write
error is logged, and the next attempt reconnects.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

from service.caches import ExpiringCache

log = logging.getLogger(__name__)

KEY_PREFIX = "alga-runner:idempotency:"
SOCKET_TIMEOUT_S = 0.5


class ReplayStore(Protocol):
    def get(self, tenant: str, extension: str, key: str) -> dict | None: ...

    def put(self, tenant: str, extension: str, key: str, outcome: dict) -> None: ...


class MemoryReplays:
    def __init__(self, max_entries: int, ttl_s: int):
        self._cache = ExpiringCache(max_entries, ttl_s)

    def get(self, tenant: str, extension: str, key: str) -> dict | None:
        return self._cache.get((tenant, extension, key))

    def put(self, tenant: str, extension: str, key: str, outcome: dict) -> None:
        self._cache.set((tenant, extension, key), outcome)


class RedisReplays:
    """``SET <prefix><sha256(tenant, extension, key)> <envelope JSON> EX ttl`` on a shared Redis."""

    def __init__(self, url: str, ttl_s: int, client: Any = None):
        self.ttl_s = ttl_s
        self._client = client if client is not None else _connect(url)

    def get(self, tenant: str, extension: str, key: str) -> dict | None:
        try:
            raw = self._client.get(_key(tenant, extension, key))
        except Exception as e:  # redis errors, timeouts, OSError: a miss, never a failed execution
            log.warning("idempotency store read failed: %s", e, extra={"tenant": tenant, "extension": extension})
            return None
        return None if raw is None else json.loads(raw)

    def put(self, tenant: str, extension: str, key: str, outcome: dict) -> None:
        if self.ttl_s <= 0:
            return
        try:
            self._client.set(_key(tenant, extension, key), json.dumps(outcome, separators=(",", ":")), ex=self.ttl_s)
        except Exception as e:
            log.warning("idempotency store write failed: %s", e, extra={"tenant": tenant, "extension": extension})


def replay_store(redis_url: str, max_entries: int, ttl_s: int) -> ReplayStore:
    return RedisReplays(redis_url, ttl_s) if redis_url else MemoryReplays(max_entries, ttl_s)


def _key(tenant: str, extension: str, key: str) -> str:
    # Hashed: ids and keys come from request headers and may be long or hold any character.
    return KEY_PREFIX + hashlib.sha256(json.dumps([tenant, extension, key]).encode()).hexdigest()


def _connect(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)
