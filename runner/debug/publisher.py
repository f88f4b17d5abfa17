"""Publishing debug events to Redis Streams (reference §5), without ever slowing an execution.

``DebugStream.publish`` calls :meth:`RedisPublisher.submit`, which only puts the
event on a bounded queue (``put_nowait``; a full queue drops the event and
counts it). One background thread drains the queue with
``XADD <key> MAXLEN ~ <RUNNER_DEBUG_REDIS_MAXLEN> * ts level stream tenant
extension install request version message truncated``.

When Redis is down or too slow (1 s socket timeouts), the event at hand is
dropped, the connection is discarded and no new attempt is made for
min(30, 2^min(failures - 1, 5)) seconds (1, 2, 4, 8, 16, 30 s, the
reference's backoff); events arriving meanwhile are dropped and counted. Unlike
the reference, a failed first connection does not switch the stream off for
the life of the process. The service's Lifecycle starts the thread (after
Gunicorn forks) and stops it; events submitted before that wait in the queue.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable
from runner.settings import RunnerSettings, redis_url

log = logging.getLogger("runner.debug.publisher")

QUEUE_SIZE = 10000
SOCKET_TIMEOUT_S = 1.0
FIELD_ORDER = ("ts", "level", "stream", "tenant", "extension", "install", "request", "version", "message")
_STOP = object()


def backoff_seconds(failures: int) -> float:
    """Wait after the ``failures``-th consecutive failure: 1, 2, 4, 8, 16, then 30 s."""
    return float(min(30, 2 ** min(max(failures - 1, 0), 5)))


def fields(event: dict[str, Any]) -> dict[str, str]:
    """The XADD fields of one DebugStream event, in the reference's order (optional ones when known)."""
    out = {}
    for name in FIELD_ORDER:
        value = event.get(name)
        if name == "message":
            out[name] = str(value or "")
        elif value is not None and value != "":
            out[name] = str(value)
    out["truncated"] = "1" if event.get("truncated") else "0"
    return out


class RedisPublisher:
    def __init__(self, url: str, maxlen: int = 2000, queue_size: int = QUEUE_SIZE,
                 connect: Callable[[str], Any] | None = None):
        self.url = url
        self.maxlen = maxlen if maxlen > 0 else 2000
        self._connect = connect or _connect
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._client = None
        self._failures = 0
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self.stats = {"submitted": 0, "published": 0, "dropped": 0, "connects": 0, "connect_failures": 0,
                      "publish_failures": 0}

    @classmethod
    def from_settings(cls, settings: RunnerSettings) -> "RedisPublisher | None":
        """A publisher when ``RUNNER_DEBUG_REDIS_URL`` is set, else None."""
        if not settings.debug_redis_url:
            return None
        return cls(redis_url(settings.debug_redis_url, settings.debug_redis_password), settings.debug_stream_maxlen)

    @property
    def connected(self) -> bool:
        return self._client is not None

    def submit(self, key: str, event: dict[str, Any]) -> None:
        """Queue one event for ``key``; never blocks, never raises."""
        self.stats["submitted"] += 1
        try:
            self._queue.put_nowait((key, fields(event)))
        except queue.Full:
            self.stats["dropped"] += 1
        except Exception:  # a publisher problem must never reach an execution
            self.stats["dropped"] += 1
            log.exception("debug stream: could not queue an event")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue is empty (tests, shutdown); True when it emptied in time."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="debug-redis", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            thread.join(timeout)
        self._drop_client()

    # -- background thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._publish(*item)
            except Exception:
                log.exception("debug stream: unexpected publisher error")
            finally:
                self._queue.task_done()

    def _publish(self, key: str, values: dict[str, str]) -> None:
        client = self._client or self._reconnect()
        if client is None:
            self.stats["dropped"] += 1
            return
        try:
            client.xadd(key, values, maxlen=self.maxlen, approximate=True)
        except Exception as e:
            self.stats["dropped"] += 1
            self.stats["publish_failures"] += 1
            if _is_connection_error(e):
                self._fail(f"XADD failed: {type(e).__name__}: {e}")
            else:
                log.warning("debug stream: XADD to %s refused: %s", key, e)
            return
        self.stats["published"] += 1

    def _reconnect(self):
        if time.monotonic() < self._retry_at:
            return None
        try:
            client = self._connect(self.url)
            client.ping()
        except Exception as e:
            self.stats["connect_failures"] += 1
            self._fail(f"connect failed: {type(e).__name__}: {e}")
            return None
        self.stats["connects"] += 1
        if self._failures:
            log.info("debug stream: connected to Redis again after %d failures", self._failures)
        self._failures = 0
        self._client = client
        return client

    def _fail(self, reason: str) -> None:
        self._drop_client()
        self._failures += 1
        wait = backoff_seconds(self._failures)
        self._retry_at = time.monotonic() + wait
        log.warning("debug stream: %s; events are dropped for %.0f s", reason, wait,
                    extra={"failures": self._failures})

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


def _connect(url: str):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No client-side retries: a failure is handled once, by our backoff.
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S,
                                retry=Retry(NoBackoff(), 0))


def _is_connection_error(e: Exception) -> bool:
    import redis

    return isinstance(e, (redis.ConnectionError, redis.TimeoutError, OSError))


__all__ = ["RedisPublisher", "backoff_seconds", "fields"]
