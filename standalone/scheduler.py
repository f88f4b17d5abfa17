"""The scheduler loop of standalone mode: runs ``ext_schedule`` rows on their cron expressions.

What Alga's jobs worker does (extensionScheduledInvocationHandler): call the
install's endpoint with ``context.trigger = "schedule"``, the request id as
idempotency key, the two routing headers as ``http.headers``, an empty query
and the JSON payload as the body of non-GET calls; then record
``last_run_at``, ``last_run_status`` (``success``, ``error`` when the guest
answered 400 or more, ``failed`` when the runner could not run it) and
``last_error``. Missed runs are not replayed: a due schedule runs once and
moves to its next time after now.

Several Gunicorn processes may run a loop on one registry: a run belongs to the
process whose claim (storage/registry/schedules.py) succeeds. The loop is a daemon
thread that only sleeps and uses SQLite, so gevent can patch it; the service's
Lifecycle starts and stops it. :meth:`ScheduleLoop.run_due` can be called
directly with any ``now`` (tests drive the clock).
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from runner.executor import Executor
from runner.pool import RunnerBusy
from standalone.gateway import build_request, execute, match_endpoint
from storage.registry import schedules
from storage.registry.installs import Registry
from storage.registry.secrets import SecretsStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    schedule_id: str
    status: str  # success | error | failed
    error: str | None


class ScheduleLoop:
    def __init__(self, registry: Registry, secrets: SecretsStore, executor: Executor, tick_ms: int,
                 timeout_ms: int):
        self.registry = registry
        self.secrets = secrets
        self.executor = executor
        self.tick_s = tick_ms / 1000
        self.timeout_ms = timeout_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ext-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.run_due()
            except Exception:
                log.exception("scheduler tick failed")

    def run_due(self, now: datetime | None = None) -> list[Run]:
        """Run every schedule due at ``now`` (default: the current time) that this process claims."""
        now = now or datetime.now(timezone.utc)
        db = self.registry.db
        runs = []
        for due in schedules.due(db, now):
            try:
                following = schedules.next_run_at(due.cron, due.timezone, now)
            except (ValueError, KeyError) as e:  # stored by hand or by an older validator: stop retrying it
                schedules.disable(db, due.id)
                runs.append(self._record(Run(due.id, "failed", f"invalid cron or timezone: {e}"), now))
                continue
            if schedules.claim(db, due, following):
                run = self._fire(due)
                if run is not None:
                    runs.append(self._record(run, now))
        return runs

    def _fire(self, due: schedules.Due) -> Run | None:
        """Call the endpoint; None when there is nothing to run (install gone or disabled, as Alga skips)."""
        install = self.registry.install_by_id(due.install_id)
        if install is None or install.tenant_id != due.tenant_id or not install.enabled:
            log.info("schedule skipped: install missing or disabled", extra={"schedule": due.id})
            return None
        if not install.content_hash:
            return Run(due.id, "failed", "Install content hash missing")
        method = due.endpoint_method.upper()
        if match_endpoint(install.api_endpoints, method, due.endpoint_path) is None:
            return Run(due.id, "failed", "Schedule endpoint does not belong to installed version")
        body = due.payload.encode("utf-8") if method != "GET" and due.payload else None
        request_id = str(uuid.uuid4())
        routing, doc = build_request(
            install, method=method, path=due.endpoint_path, query={}, headers={}, body=body,
            request_id=request_id, idempotency_key=request_id, timeout_ms=self.timeout_ms,
            secret_envelope=self.secrets.envelope(install), user=None,
            context_extra={"trigger": "schedule", "schedule_id": due.id})
        try:
            outcome = execute(self.executor, routing, doc)
        except RunnerBusy:
            return Run(due.id, "failed", "runner_busy: every worker was busy")
        if outcome["error"]:
            return Run(due.id, "failed", outcome["error"])
        if outcome["status"] >= 400:
            return Run(due.id, "error", f"Runner returned status {outcome['status']}")
        return Run(due.id, "success", None)

    def _record(self, run: Run, now: datetime) -> Run:
        schedules.record_run(self.registry.db, run.schedule_id, now, run.status, run.error)
        log.info("schedule ran", extra={"schedule": run.schedule_id, "status": run.status, "error": run.error})
        return run
