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
from collections import OrderedDict, deque
from typing import Any, Iterator

from runner.messages import ExecutionIds
from runner.settings import RunnerSettings

RING_SIZE = 500
MAX_RINGS = 1000  # tenant:extension keys come from request bodies: keep the most recently used
SUBSCRIBER_QUEUE = 1000


def stream_key(prefix: str, tenant: str | None, extension: str | None) -> str:
    """Reference §5: ``<prefix><tenant>:<extension>`` lower-cased, one part if one is known, else ``unknown``."""
    parts = [p.lower() for p in (tenant, extension) if p]
    return prefix + (":".join(parts) if parts else "unknown")


class DebugStream:
    """:param redis_publisher: a started-and-stopped-by-the-lifecycle RedisPublisher, or None."""

    def __init__(self, settings: RunnerSettings, redis_publisher=None):
        self.prefix = settings.debug_stream_prefix
        self.max_bytes = settings.debug_max_event_bytes if settings.debug_max_event_bytes > 0 else 8192
        self.redis = redis_publisher
        self._rings: OrderedDict[str, deque] = OrderedDict()
        self._subscribers: dict[str, list[queue.Queue]] = {}
        self._lock = threading.Lock()

    def publish(self, ids: ExecutionIds, event: dict[str, Any]) -> None:
        """Record one event (level, stream, message, optional ts) for the execution ``ids``."""
        message, truncated = truncate_utf8(event.get("message", ""), self.max_bytes)
        full = {"ts": event.get("ts") or int(time.time() * 1000), "level": event.get("level", "info"),
                "stream": event.get("stream", "log"), **ids.fields(), "message": message, "truncated": truncated}
        key = stream_key(self.prefix, ids.tenant, ids.extension)
        with self._lock:
            ring = self._rings.get(key)
            if ring is None:
                ring = self._rings[key] = deque(maxlen=RING_SIZE)
                if len(self._rings) > MAX_RINGS:
                    self._rings.popitem(last=False)
            else:
                self._rings.move_to_end(key)
            ring.append(full)
            subscribers = list(self._subscribers.get(key, ()))
        for q in subscribers:
            try:
                q.put_nowait(full)
            except queue.Full:
                pass  # a subscriber that does not keep up misses events
        if self.redis is not None:
            self.redis.submit(key, full)

    def recent(self, tenant: str, extension: str, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            ring = self._rings.get(stream_key(self.prefix, tenant, extension), ())
            return list(ring)[-limit:]

    def follow(self, tenant: str, extension: str, timeout: float = 15.0) -> "Subscription":
        """New events as they arrive; ``None`` every ``timeout`` seconds of silence (keep-alive).

        Subscribes at once (not on the first ``next()``), so nothing published
        between a ``recent()`` call and the first read is lost. The caller must
        ``close()`` the subscription (or use it in a ``with``), read or not.
        """
        key = stream_key(self.prefix, tenant, extension)
        q: queue.Queue = queue.Queue(SUBSCRIBER_QUEUE)
        with self._lock:
            self._subscribers.setdefault(key, []).append(q)
        return Subscription(self, key, q, timeout)

    def _unsubscribe(self, key: str, q: queue.Queue) -> None:
        with self._lock:
            queues = self._subscribers.get(key, [])
            if q in queues:
                queues.remove(q)
            if not queues:
                self._subscribers.pop(key, None)


class Subscription:
    """The events of one ``follow()``: iterate to read, ``close()`` to unsubscribe (idempotent)."""

    def __init__(self, stream: DebugStream, key: str, q: queue.Queue, timeout: float):
        self._stream, self._key, self._queue, self._timeout = stream, key, q, timeout
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any] | None]:
        while not self._closed:
            try:
                yield self._queue.get(timeout=self._timeout)
            except queue.Empty:
                yield None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream._unsubscribe(self._key, self._queue)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def truncate_utf8(message: str, max_bytes: int) -> tuple[str, bool]:
    """Cut to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    data = message.encode("utf-8")
    if len(data) <= max_bytes:
        return message, False
    return data[:max_bytes].decode("utf-8", "ignore"), True
