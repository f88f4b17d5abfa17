"""The in-process scheduler: due rows fire once (claimed), as Alga's jobs worker calls, with the
last-run columns recorded and next_run_at advanced in the schedule's time zone."""
import base64
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standalone_helpers import install, sdk_extension, write_extension

from app import service_of as svc
from runner.contract import envelope
from runner.pool import RunnerBusy
from standalone import scheduler as schedule_runner
from standalone.manifest import validate
from standalone.scheduler import ScheduleLoop
from storage.registry.installs import Registry
from storage.registry.schedules import iso
from storage.registry.secrets import SecretsStore

T0 = datetime(2026, 1, 5, 14, 0, tzinfo=timezone.utc)
TENANT = "tenant-s"


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path / "r.db", TENANT)
    manifest = validate({"name": "com.tests.cron", "version": "1.0.0", "runtime": "wasm-js@1", "api": {"endpoints": [
        {"method": "POST", "path": "/echo", "handler": "h"}, {"method": "GET", "path": "/ping", "handler": "h"}]}})
    r.upsert(TENANT, manifest, "sha256:" + "c" * 64, 1, "u", [])
    return r


class Calls(list):
    """The executor calls made; ``answer`` is what they get back (an envelope, or an exception to raise)."""

    answer = envelope(200, {}, None)

    def __call__(self, executor, routing, doc):
        self.append((routing, doc))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def calls(monkeypatch):
    recorder = Calls()
    monkeypatch.setattr(schedule_runner, "execute", recorder)
    return recorder


def runner_for(registry, tmp_path):
    return ScheduleLoop(registry, SecretsStore(registry, tmp_path / "key"), executor=None, tick_ms=20, timeout_ms=5000)


def add_schedule(registry, cron="* * * * *", tz="UTC", method="POST", path="/echo", payload='{"a":1}',
                 next_run=T0, enabled=1) -> str:
    install = registry.installs(TENANT)[0]
    schedule_id = str(uuid.uuid4())
    registry.db.execute(
        "INSERT INTO ext_schedule (id, tenant_id, install_id, endpoint_path, endpoint_method, cron, timezone, "
        "enabled, payload, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [schedule_id, TENANT, install.id, path, method, cron, tz, enabled, payload,
         next_run and iso(next_run)])
    return schedule_id


def row(registry, schedule_id) -> dict:
    return next(registry.db.query("SELECT * FROM ext_schedule WHERE id = ?", [schedule_id]))


def test_a_due_schedule_fires_as_the_jobs_worker_calls(registry, calls, tmp_path):
    schedule_id = add_schedule(registry)
    runs = runner_for(registry, tmp_path).run_due(T0 + timedelta(seconds=30))
    assert [(r.schedule_id, r.status, r.error) for r in runs] == [(schedule_id, "success", None)]
    (routing, doc), = calls
    install = registry.installs(TENANT)[0]
    assert routing["x-idempotency-key"] == routing["x-request-id"] == doc["context"]["request_id"]
    assert (routing["x-alga-tenant"], routing["x-alga-extension"]) == (TENANT, install.registry_id)
    assert doc["context"]["trigger"] == "schedule" and doc["context"]["schedule_id"] == schedule_id
    assert doc["http"] == {"method": "POST", "path": "/echo", "query": {},
                           "headers": {"x-alga-tenant": TENANT, "x-alga-extension": install.registry_id},
                           "body_b64": base64.b64encode(b'{"a":1}').decode()}
    assert "user" not in doc
    after = row(registry, schedule_id)
    assert (after["last_run_status"], after["last_error"]) == ("success", None)
    assert after["last_run_at"] == "2026-01-05T14:00:30.000Z"
    assert after["next_run_at"] == "2026-01-05T14:01:00.000Z"
    assert runner_for(registry, tmp_path).run_due(T0 + timedelta(seconds=59)) == []  # not due again yet


def test_get_schedules_send_no_body(registry, calls, tmp_path):
    add_schedule(registry, method="GET", path="/ping")
    runner_for(registry, tmp_path).run_due(T0)
    assert "body_b64" not in calls[0][1]["http"]  # absent, as Alga's job handler sends it


def test_not_due_and_disabled_schedules_do_not_run(registry, calls, tmp_path):
    add_schedule(registry, next_run=T0 + timedelta(minutes=1))
    add_schedule(registry, enabled=0)
    add_schedule(registry, next_run=None)
    assert runner_for(registry, tmp_path).run_due(T0) == [] and calls == []


@pytest.mark.parametrize("answer, status, error", [
    (envelope(500, {}, None), "error", "Runner returned status 500"),
    (envelope(500, error="execute_failed: boom"), "failed", "execute_failed: boom"),
    (RunnerBusy(), "failed", "runner_busy: every worker was busy"),
])
def test_outcomes_are_recorded(registry, calls, tmp_path, answer, status, error):
    calls.answer = answer
    schedule_id = add_schedule(registry)
    runner_for(registry, tmp_path).run_due(T0)
    after = row(registry, schedule_id)
    assert (after["last_run_status"], after["last_error"]) == (status, error)


def test_next_run_follows_the_time_zone(registry, calls, tmp_path):
    winter = add_schedule(registry, cron="0 9 * * *", tz="America/New_York")
    runner_for(registry, tmp_path).run_due(T0)  # 09:00 in New York, EST
    assert row(registry, winter)["next_run_at"] == "2026-01-06T14:00:00.000Z"
    summer = add_schedule(registry, cron="0 9 * * *", tz="America/New_York", next_run=datetime(2026, 7, 6, 13, 0,
                                                                                           tzinfo=timezone.utc))
    runner_for(registry, tmp_path).run_due(datetime(2026, 7, 6, 13, 0, tzinfo=timezone.utc))
    assert row(registry, summer)["next_run_at"] == "2026-07-07T13:00:00.000Z"


def test_missed_runs_are_not_replayed(registry, calls, tmp_path):
    schedule_id = add_schedule(registry)
    runner_for(registry, tmp_path).run_due(T0 + timedelta(hours=3, seconds=5))
    assert len(calls) == 1 and row(registry, schedule_id)["next_run_at"] == "2026-01-05T17:01:00.000Z"


def test_two_processes_fire_a_run_once(registry, calls, tmp_path):
    for _ in range(5):
        add_schedule(registry)
    barrier = threading.Barrier(4)
    results = []

    def run():
        own = Registry(registry.path, TENANT)  # its own connection, as another Gunicorn process
        barrier.wait()
        results.extend(runner_for(own, tmp_path).run_due(T0))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 5 and len(results) == 5


def test_disabled_or_missing_installs_are_skipped_but_advanced(registry, calls, tmp_path):
    schedule_id = add_schedule(registry)
    install = registry.installs(TENANT)[0]
    registry.set_enabled(install.id, False)
    assert runner_for(registry, tmp_path).run_due(T0) == [] and calls == []
    after = row(registry, schedule_id)
    assert after["next_run_at"] == "2026-01-05T14:01:00.000Z" and after["last_run_status"] is None
    registry.uninstall(install)
    assert runner_for(registry, tmp_path).run_due(T0 + timedelta(minutes=1)) == [] and calls == []


def test_endpoint_missing_from_the_version_fails(registry, calls, tmp_path):
    schedule_id = add_schedule(registry, path="/gone")
    runner_for(registry, tmp_path).run_due(T0)
    assert calls == []
    after = row(registry, schedule_id)
    assert (after["last_run_status"], after["last_error"]) == (
        "failed", "Schedule endpoint does not belong to installed version")


def test_an_unusable_cron_is_disabled(registry, calls, tmp_path):
    schedule_id = add_schedule(registry, cron="not a cron")
    runs = runner_for(registry, tmp_path).run_due(T0)
    after = row(registry, schedule_id)
    assert runs[0].status == "failed" and (after["enabled"], after["next_run_at"]) == (0, None)
    assert after["last_error"].startswith("invalid cron or timezone")


@pytest.mark.slow
def test_the_app_scheduler_thread_runs_a_real_component(make_app, mini_wasm, tmp_path):
    app = make_app(scheduler_enabled=True, scheduler_tick_ms=50)
    scheduler = svc(app).standalone.scheduler
    svc(app).lifecycle.start()  # what Gunicorn's post_worker_init does
    try:
        folder = write_extension(tmp_path / "mini", name="com.tests.cron-mini", wasm=mini_wasm, ui_html=None,
                                 endpoints=[{"method": "POST", "path": "/echo", "handler": "h"}])
        result = install(app, folder)
        registry = svc(app).standalone.registry
        schedule_id = str(uuid.uuid4())
        registry.db.execute(
            "INSERT INTO ext_schedule (id, tenant_id, install_id, endpoint_path, endpoint_method, cron, timezone, "
            "payload, next_run_at) VALUES (?, ?, ?, '/echo', 'POST', '* * * * *', 'UTC', '{\"x\":1}', ?)",
            [schedule_id, result.install.tenant_id, result.install.id, "2020-01-01T00:00:00.000Z"])
        deadline = time.monotonic() + 60
        while row(registry, schedule_id)["last_run_status"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        after = row(registry, schedule_id)
        assert (after["last_run_status"], after["last_error"]) == ("success", None)
        assert after["next_run_at"] > iso(datetime.now(timezone.utc))
    finally:
        scheduler.stop()


@pytest.mark.slow
def test_a_schedule_the_guest_creates_through_the_host_api_runs(module_app, tmp_path_factory):
    sdk = install(module_app, sdk_extension(tmp_path_factory.mktemp("ext") / "sdk")).install
    client = module_app.test_client()

    def scheduler(fn, *args):
        r = client.post(f"/api/ext/{sdk.registry_id}/call", json={"iface": "scheduler", "fn": fn, "args": list(args)})
        return r.get_json()["ok"]

    created = scheduler("create-schedule", {"endpoint": "GET /status", "cron": "*/5 * * * *"})
    assert created["success"], created
    runs = svc(module_app).standalone.scheduler.run_due(datetime.now(timezone.utc) + timedelta(minutes=6))
    assert [(r.schedule_id, r.status) for r in runs] == [(created["scheduleId"], "success")]
    info = scheduler("get-schedule", created["scheduleId"])
    assert (info["lastRunStatus"], info["lastError"]) == ("success", None)
