"""The in-process scheduler of standalone mode: runs ``ext_schedule`` rows on their cron expressions.

What Alga's jobs worker does (extensionScheduledInvocationHandler): call the
install's endpoint with ``context.trigger = "schedule"``, the request id as
idempotency key, the two routing headers as ``http.headers``, an empty query
and the JSON payload as the body of non-GET calls; then record
``last_run_at``, ``last_run_status`` (``success``, ``error`` when the guest
answered 400 or more, ``failed`` when the runner could not run it) and
``last_error``. Missed runs are not replayed: a due schedule runs once and
moves to its next time after now.

Several Gunicorn processes may run a scheduler on one registry: a run belongs
to the process whose ``UPDATE ... WHERE id = ? AND next_run_at = ?`` claims
it. The loop is a daemon thread that only sleeps and uses SQLite, so gevent
can patch it. :meth:`ScheduleRunner.run_due` can be called directly with any
``now`` (tests drive the clock).
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from runner.gateway import build_request, execute, match_endpoint
from runner.pool import RunnerBusy
from storage.registry import Registry
from storage.schedules import next_run_at

log = logging.getLogger(__name__)

_DUE = ("SELECT id, tenant_id, install_id, endpoint_path, endpoint_method, cron, timezone, payload, next_run_at "
        "FROM ext_schedule WHERE enabled = 1 AND next_run_at IS NOT NULL "
        "AND julianday(next_run_at) <= julianday(?) ORDER BY next_run_at")


@dataclass(frozen=True)
class Run:
    schedule_id: str
    status: str  # success | error | failed
    error: str | None


class ScheduleRunner:
    def __init__(self, settings, registry: Registry, secrets, executor):
        self.settings = settings
        self.registry = registry
        self.secrets = secrets
        self.executor = executor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="ext-scheduler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.scheduler_tick_ms / 1000):
            try:
                self.run_due()
            except Exception:
                log.exception("scheduler tick failed")

    def run_due(self, now: datetime | None = None) -> list[Run]:
        """Run every schedule due at ``now`` (default: the current time) that this process claims."""
        now = now or datetime.now(timezone.utc)
        db = self.registry.db
        runs = []
        for row in list(db.query(_DUE, [_iso(now)])):
            try:
                following = next_run_at(row["cron"], row["timezone"], now)
            except (ValueError, KeyError) as e:  # stored by hand or by an older validator: stop retrying it
                db.execute("UPDATE ext_schedule SET enabled = 0, next_run_at = NULL WHERE id = ?", [row["id"]])
                runs.append(self._record(Run(row["id"], "failed", f"invalid cron or timezone: {e}"), now))
                continue
            claimed = db.execute("UPDATE ext_schedule SET next_run_at = ? WHERE id = ? AND next_run_at = ?",
                                 [following, row["id"], row["next_run_at"]]).rowcount
            if claimed:
                run = self._fire(row)
                if run is not None:
                    runs.append(self._record(run, now))
        return runs

    def _fire(self, row: dict) -> Run | None:
        """Call the endpoint; None when there is nothing to run (install gone or disabled, as Alga skips)."""
        install = self.registry.install_by_id(row["install_id"])
        if install is None or install.tenant_id != row["tenant_id"] or not install.enabled:
            log.info("schedule skipped: install missing or disabled", extra={"schedule": row["id"]})
            return None
        if not install.content_hash:
            return Run(row["id"], "failed", "Install content hash missing")
        method = row["endpoint_method"].upper()
        if match_endpoint(install.api_endpoints, method, row["endpoint_path"]) is None:
            return Run(row["id"], "failed", "Schedule endpoint does not belong to installed version")
        body = row["payload"].encode("utf-8") if method != "GET" and row["payload"] else None
        request_id = str(uuid.uuid4())
        routing, doc = build_request(
            install, method=method, path=row["endpoint_path"], query={}, headers={}, body=body,
            request_id=request_id, idempotency_key=request_id, timeout_ms=self.settings.default_timeout_ms,
            secret_envelope=self.secrets.envelope(install), user=None,
            context_extra={"trigger": "schedule", "schedule_id": row["id"]})
        try:
            outcome = execute(self.executor, routing, doc)
        except RunnerBusy:
            return Run(row["id"], "failed", "runner_busy: every worker was busy")
        if outcome["error"]:
            return Run(row["id"], "failed", outcome["error"])
        if outcome["status"] >= 400:
            return Run(row["id"], "error", f"Runner returned status {outcome['status']}")
        return Run(row["id"], "success", None)

    def _record(self, run: Run, now: datetime) -> Run:
        self.registry.db.execute(
            "UPDATE ext_schedule SET last_run_at = ?, last_run_status = ?, last_error = ?, updated_at = ? "
            "WHERE id = ?",
            [_iso(now), run.status, run.error[:4000] if run.error else None, _iso(datetime.now(timezone.utc)),
             run.schedule_id])
        log.info("schedule ran", extra={"schedule": run.schedule_id, "status": run.status, "error": run.error})
        return run


def _iso(when: datetime) -> str:
    """The column format of storage.schedules: UTC, milliseconds, ``Z``."""
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
