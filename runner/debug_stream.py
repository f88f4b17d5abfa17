"""The extension debug stream: guest log lines, stdout/stderr and failures.

Events are kept in a bounded in-process ring per tenant+extension (for
``flask ext logs`` and the host page's live panel) and handed to the Redis
publisher when ``RUNNER_DEBUG_REDIS_URL`` is set. Publishing never blocks or
fails an execution.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any, Iterator

RING_SIZE = 500
SUBSCRIBER_QUEUE = 1000


def stream_key(prefix: str, tenant: str | None, extension: str | None) -> str:
    """Reference §5: ``<prefix><tenant>:<extension>`` lower-cased, one part if one is known, else ``unknown``."""
    parts = [p.lower() for p in (tenant, extension) if p]
    return prefix + (":".join(parts) if parts else "unknown")


class DebugStream:
    def __init__(self, settings, redis_publisher=None):
        self.prefix = settings.debug_stream_prefix
        self.max_bytes = settings.debug_max_event_bytes if settings.debug_max_event_bytes > 0 else 8192
        self.redis = redis_publisher
        self._rings: dict[str, deque] = {}
        self._subscribers: dict[str, list[queue.Queue]] = {}
        self._lock = threading.Lock()
        self.stats = {"published": 0, "dropped": 0}

    def publish(self, ids: dict[str, Any], event: dict[str, Any]) -> None:
        """Record one event (level, stream, message, optional ts) for the execution ``ids``."""
        message, truncated = truncate_utf8(event.get("message", ""), self.max_bytes)
        full = {"ts": event.get("ts") or int(time.time() * 1000), "level": event.get("level", "info"),
                "stream": event.get("stream", "log"), **{k: v for k, v in ids.items() if v},
                "message": message, "truncated": truncated}
        key = stream_key(self.prefix, ids.get("tenant"), ids.get("extension"))
        with self._lock:
            self._rings.setdefault(key, deque(maxlen=RING_SIZE)).append(full)
            subscribers = list(self._subscribers.get(key, ()))
        for q in subscribers:
            try:
                q.put_nowait(full)
            except queue.Full:
                self.stats["dropped"] += 1
        self.stats["published"] += 1
        if self.redis is not None:
            self.redis.submit(key, full)

    def recent(self, tenant: str, extension: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            ring = self._rings.get(stream_key(self.prefix, tenant, extension), ())
            return list(ring)[-limit:]

    def follow(self, tenant: str, extension: str, timeout: float = 15.0) -> Iterator[dict[str, Any] | None]:
        """New events as they arrive; ``None`` every ``timeout`` seconds of silence (keep-alive).

        Subscribes at once (not on the first ``next()``), so nothing published
        between a ``recent()`` call and the first read is lost.
        """
        key = stream_key(self.prefix, tenant, extension)
        q: queue.Queue = queue.Queue(SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.setdefault(key, []).append(q)
        return self._drain(key, q, timeout)

    def _drain(self, key: str, q: queue.Queue, timeout: float) -> Iterator[dict[str, Any] | None]:
        try:
            while True:
                try:
                    yield q.get(timeout=timeout)
                except queue.Empty:
                    yield None
        finally:
            with self._lock:
                self._subscribers[key].remove(q)


def truncate_utf8(message: str, max_bytes: int) -> tuple[str, bool]:
    """Cut to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    data = message.encode("utf-8")
    if len(data) <= max_bytes:
        return message, False
    return data[:max_bytes].decode("utf-8", "ignore"), True
