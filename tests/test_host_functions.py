"""Host interfaces called directly with a CallContext, as a worker calls them, without wasm.

Standalone backends (the SQLite registry behind the internal-API seam), so each contract runs in
the quick tier; the slow tests run the same contracts from the SDK component.
"""
import json
import logging

import pytest
from helpers import call_context
from wasmtime.component import Record

from runner.worker.host import clients, context, invoicing, scheduler, secrets, services, storage, user
from runner.worker.host import logging as guest_logging
from runner.worker.host.values import record
from runner.worker.wasm_compat import Err
from settings import Settings
from storage.registry.catalogue import replace_seed
from storage.registry.db import open_db

TENANT = "tenant-h"
INSTALL = "install-h"


def plain(value):
    """Records as dicts (snake_case keys), the err arm as {"err": ...}, lists element-wise."""
    if isinstance(value, Err):
        return {"err": plain(value.payload)}
    if isinstance(value, Record):
        return {k.replace("-", "_"): plain(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env({}, registry_db=str(tmp_path / "r.db"), storage_max_value_bytes=64)


def ctx_of(settings, *grants, install=INSTALL, **fields):
    return call_context(settings, tenant=TENANT, extension="ext-h", install=install, request="req-h",
                        version="ver-h", grants=set(grants), **fields)


def entry(ns, key, value: bytes, revision=None):
    return record(namespace=ns, key=key, value=value, revision=revision)


# -- storage --------------------------------------------------------------------------------

def test_storage_contract(settings):
    ctx = ctx_of(settings, storage.CAP)
    call = lambda fn, *args: plain(fn(ctx, *args))  # noqa: E731
    assert call(storage.get, "ns", "k1") == {"err": "missing"}
    assert call(storage.put, entry("ns", "k1", b"v1")) == {"namespace": "ns", "key": "k1", "value": b"v1",
                                                            "revision": 1}
    assert call(storage.put, entry("ns", "k1", b"v2"))["revision"] == 2
    assert call(storage.put, entry("ns", "k1", b"stale", 1)) == {"err": "conflict"}
    assert call(storage.put, entry("ns", "new", b"x", 1)) == {"err": "conflict"}
    assert call(storage.put, entry("ns", "a", bytes(range(64))))["revision"] == 1
    assert [(e["key"], e["value"][:2]) for e in call(storage.list_entries, "ns", None)] == [("a", b"\0\1"),
                                                                                           ("k1", b"v2")]
    assert call(storage.delete, "ns", "a") is None
    assert call(storage.delete, "ns", "a") == {"err": "conflict"}
    assert call(storage.list_entries, "other", None) == []


def test_storage_refuses_what_the_server_refuses(settings):
    ctx = ctx_of(settings, storage.CAP)
    assert plain(storage.put(ctx, entry("ns", "big", b"x" * 65))) == {"err": "internal"}  # over the value cap
    assert plain(storage.put(ctx, entry("n" * 129, "k", b"x"))) == {"err": "internal"}
    assert plain(storage.put(ctx, entry("ns", "a/b", b"x"))) == {"err": "internal"}
    assert plain(storage.list_entries(ctx, "ns", "not a cursor")) == {"err": "internal"}


def test_storage_preconditions(settings):
    assert plain(storage.get(ctx_of(settings), "ns", "k")) == {"err": "denied"}
    assert plain(storage.get(ctx_of(settings, storage.CAP, install=None), "ns", "k")) == {"err": "denied"}


def test_storage_is_scoped_by_tenant_and_install(settings):
    storage.put(ctx_of(settings, storage.CAP), entry("iso", "k", b"mine"))
    other = ctx_of(settings, storage.CAP, install="install-other")
    assert plain(storage.get(other, "iso", "k")) == {"err": "missing"}


# -- scheduler (no registry install: any GET/POST path without parameters is schedulable) -------

def test_scheduler_round_trip(settings):
    ctx = ctx_of(settings, scheduler.CAP)
    created = plain(scheduler.create_schedule(ctx, record(endpoint="POST /jobs", cron="*/5 * * * *",
                                                          timezone="Europe/Berlin", enabled=None, name="nightly",
                                                          payload='{"a": 1}')))
    assert created["success"] and created["error"] is None
    listed = plain(scheduler.list_schedules(ctx))
    assert [(s["name"], s["endpoint_path"], s["timezone"], s["payload"]) for s in listed] == [
        ("nightly", "/jobs", "Europe/Berlin", '{"a":1}')]
    assert plain(scheduler.get_schedule(ctx, created["schedule_id"]))["cron"] == "*/5 * * * *"
    bad = plain(scheduler.create_schedule(ctx, record(endpoint="/jobs", cron="* * * * *", timezone=None,
                                                      enabled=None, name=None, payload=None)))
    assert bad["success"] is False and json.loads(bad["field_errors"]) == {"cron": bad["error"]}
    assert plain(scheduler.delete_schedule(ctx, created["schedule_id"]))["success"]
    assert plain(scheduler.get_schedule(ctx, created["schedule_id"])) is None


def test_scheduler_denials(settings):
    assert plain(scheduler.list_schedules(ctx_of(settings))) == {"err": "denied"}
    write = plain(scheduler.delete_schedule(ctx_of(settings), "x"))
    assert write == {"success": False, "error": scheduler.DENIED}


# -- clients and services --------------------------------------------------------------------

def test_catalogue_from_the_seed_tables(settings):
    replace_seed(open_db(settings.registry.registry_db), TENANT,
                 [{"clientId": "c1", "clientName": "Beta"}, {"clientId": "c2", "clientName": "alpha"},
                  {"clientId": "c3", "clientName": "Gone", "isInactive": True}],
                 [{"serviceId": "s1", "serviceName": "Hosting", "itemKind": "service", "billingMethod": "fixed",
                   "defaultRate": 10}])
    ctx = ctx_of(settings, clients.CAP, services.CAP)
    page = plain(clients.list_clients(ctx, record(search=None, include_inactive=None, page=None, page_size=None)))
    assert [c["client_name"] for c in page["items"]] == ["alpha", "Beta"] and page["total_count"] == 2
    assert plain(clients.get_client(ctx, "c3"))["is_inactive"] is True
    assert plain(clients.get_client(ctx, "nope")) is None
    assert plain(clients.list_clients(ctx, record(search=None, include_inactive=None, page=0, page_size=None))) == {
        "err": "invalid-input"}
    service = plain(services.get_service(ctx, "s1"))
    assert (service["service_name"], service["default_rate"], service["is_active"]) == ("Hosting", 10.0, True)
    assert plain(services.get_service(ctx_of(settings), "s1")) == {"err": "not-allowed"}


# -- the simple ones -------------------------------------------------------------------------

def test_secrets_user_context(settings):
    granted = ctx_of(settings, "cap:secrets.get", "cap:user.read", "cap:context.read", secrets={"b": "2", "a": "1"},
                     user={"user_id": "u", "user_email": "u@x", "user_name": "U", "user_type": "client",
                           "client_name": "Acme", "client_id": "c1", "additional_fields": {"z": 1}})
    assert secrets.get(granted, "a") == "1" and plain(secrets.get(granted, "c")) == {"err": "missing"}
    assert secrets.list_keys(granted) == ["a", "b"]
    assert plain(secrets.get(ctx_of(settings), "a")) == {"err": "denied"}
    assert plain(user.get_user(granted))["client_name"] == "Acme"
    assert plain(user.get_user_v2(granted))["additional_fields"] == [("z", "1")]
    assert plain(user.get_user(ctx_of(settings, "cap:user.read"))) == {"err": "not-available"}
    assert plain(context.get_context(granted)) == {"request_id": "req-h", "tenant_id": TENANT, "extension_id": "ext-h",
                                                   "install_id": INSTALL, "version_id": "ver-h"}


def test_guest_log_lines_carry_the_ids(settings, caplog):
    ctx = ctx_of(settings, "cap:log.emit")
    log_warn = guest_logging.INTERFACES["alga:extension/logging"]["log-warn"]
    with caplog.at_level(logging.INFO, logger="ext"):
        log_warn(ctx, "careful")
        log_warn(ctx_of(settings), "not granted")
    assert [(r.levelname, r.getMessage(), r.tenant, r.request) for r in caplog.records] == [
        ("WARNING", "careful", TENANT, "req-h")]
    assert [(e["level"], e["message"]) for e in ctx.events] == [("warn", "careful")]


def test_invoicing_denied_without_the_capability(settings):
    result = plain(invoicing.create_manual_invoice(ctx_of(settings), record(client_id="c1", items=[], invoice_date=None,
                                                                            due_date=None, po_number=None)))
    assert result["success"] is False and "not granted" in result["error"]
