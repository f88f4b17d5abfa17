"""The pool's queueing policy: one FIFO queue per tenant+extension, served round-robin, with caps
on how many workers one extension and one tenant may hold at once. Pure bookkeeping, no locking
(the pool holds its lock around every call) and no I/O.

Round-robin is per request: each queue that may run gets one dispatch per turn, so a flood of
requests from one extension waits behind itself, not in front of everyone else. The caps keep a
flood from holding every worker: below the cap a request runs at once on an idle worker; at it,
the request waits in its own queue even while workers are idle (they are kept for the others).
"""
from __future__ import annotations

from collections import Counter, deque
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")
Key = tuple[str, str]  # (tenant, extension)


class FairQueues(Generic[T]):
    def __init__(self, max_per_extension: int, max_per_tenant: int, queue_size: int):
        self.max_per_extension = max_per_extension
        self.max_per_tenant = max_per_tenant
        self.queue_size = queue_size
        self._queues: dict[Key, deque[T]] = {}  # only non-empty queues; dict order is the round-robin order
        self._running: Counter[Key] = Counter()
        self._tenant_running: Counter[str] = Counter()

    def may_run(self, key: Key) -> bool:
        """Both caps leave room for one more worker for ``key``."""
        return (self._running[key] < self.max_per_extension
                and self._tenant_running[key[0]] < self.max_per_tenant)

    def may_start_now(self, key: Key) -> bool:
        """A new request of ``key`` may take an idle worker: under the caps and nobody of ``key`` ahead."""
        return key not in self._queues and self.may_run(key)

    def push(self, key: Key, item: T) -> bool:
        """Queue ``item`` at the back of ``key``'s queue; False when that queue is full."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
        elif len(queue) >= self.queue_size:
            return False
        queue.append(item)
        return True

    def remove(self, key: Key, item: T) -> bool:
        """Take ``item`` out of its queue (it gave up waiting); False when it is no longer queued."""
        queue = self._queues.get(key)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._queues[key]
        return True

    def next_ready(self) -> tuple[Key, T] | None:
        """Pop the head of the first queue, in round-robin order, whose key may run; that queue goes to
        the back of the order. None when every waiting key is at a cap (or nothing waits)."""
        for key in self._queues:
            if self.may_run(key):
                queue = self._queues.pop(key)
                item = queue.popleft()
                if queue:
                    self._queues[key] = queue
                return key, item
        return None

    def started(self, key: Key) -> None:
        self._running[key] += 1
        self._tenant_running[key[0]] += 1

    def finished(self, key: Key) -> None:
        for counter, k in ((self._running, key), (self._tenant_running, key[0])):
            counter[k] -= 1
            if counter[k] <= 0:
                del counter[k]

    def running(self, key: Key) -> int:
        return self._running[key]


    def drain(self) -> Iterator[tuple[Key, T]]:
        """Empty every queue (shutdown), yielding what was in them."""
        queues, self._queues = self._queues, {}
        for key, queue in queues.items():
            for item in queue:
                yield key, item
