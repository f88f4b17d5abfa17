"""A thread-safe, bounded cache with a time to live per entry (cachetools' TLRU underneath).

Used for everything the reference keeps in unbounded maps: idempotent replies, opened secret
envelopes, tenant hints and install validations (DECISIONS 10).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Hashable

import cachetools


class ExpiringCache:
    """Least recently used entries go first once ``max_entries`` is reached; expired ones never come back."""

    def __init__(self, max_entries: int, ttl_seconds: float):
        self.ttl = ttl_seconds
        self._enabled = max_entries > 0
        # Values are stored as (value, ttl) so each entry can live as long as its own ttl says.
        self._items = cachetools.TLRUCache(max(1, max_entries), lambda _k, item, now: now + item[1], time.monotonic)
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            item = self._items.get(key)
        return default if item is None else item[0]

    def set(self, key: Hashable, value: Any, ttl_seconds: float | None = None) -> None:
        ttl = self.ttl if ttl_seconds is None else ttl_seconds
        if ttl <= 0 or not self._enabled:
            return
        with self._lock:
            self._items[key] = (value, ttl)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            self._items.expire()
            return len(self._items)
