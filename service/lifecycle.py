"""Background work of one process (the worker pool, the scheduler loop, the debug publisher),
started and stopped in one place.

Gunicorn's hooks call :meth:`Lifecycle.start` after a worker forks, :meth:`drain` on SIGTERM
and :meth:`stop` at exit; under ``flask run`` and the test client the first request starts it.
"""
from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("service.lifecycle")


class Background(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Lifecycle:
    def __init__(self) -> None:
        self._services: list[Background] = []
        self._lock = threading.Lock()
        self.started = False
        self.stopped = False
        self.draining = False

    def add(self, service: Background) -> None:
        """Register before start; services start in this order and stop in the reverse one."""
        if self.started:
            raise RuntimeError("register background services before the lifecycle starts")
        self._services.append(service)

    def start(self, without: tuple[Background | None, ...] = ()) -> None:
        """Start every service but ``without`` once (idempotent; nothing starts after stop).

        A command that serves one request itself (``flask ext call``) starts the pool but not the
        scheduler loop: the schedules belong to the running service.
        """
        if self.started:
            return
        with self._lock:
            if self.started or self.stopped:
                return
            for service in self._services:
                if not any(service is left_out for left_out in without):
                    service.start()
            self.started = True

    def drain(self) -> None:
        """Shutting down: readiness fails and long-lived streams end, while requests still finish."""
        self.draining = True

    def stop(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.stopped = self.draining = True
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception:  # one service failing to stop must not keep the others running
                log.exception("stopping %s failed", type(service).__name__)
