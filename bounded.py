"""BoundedCache: a thread-safe LRU mapping with an entry cap and a per-entry TTL.

Used for everything the reference keeps in unbounded maps (idempotent replies,
opened secret envelopes, tenant hints, install validations): DECISIONS 10.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Hashable


class BoundedCache:
    def __init__(self, max_entries: int, ttl_seconds: float):
        self.max_entries = max_entries
        self.ttl = ttl_seconds
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return default
            expires, value = item
            if expires <= time.monotonic():
                del self._items[key]
                return default
            self._items.move_to_end(key)
            return value

    def set(self, key: Hashable, value: Any, ttl_seconds: float | None = None) -> None:
        ttl = self.ttl if ttl_seconds is None else ttl_seconds
        if ttl <= 0 or self.max_entries <= 0:
            return
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
