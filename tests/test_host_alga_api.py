"""scheduler, invoicing, clients and services (reference §4.8-4.10), from the SDK component.

Attached mode against a local server that behaves like the Alga internal API
(tests/fakes.py FakeAlga, canned answers per operation); standalone mode
against the SQLite registry (``ext_schedule``, ``seed_client``, ``seed_service``),
which answers the same API. ``get-schedule``, ``get-client`` and
``get-service`` return ``result<option<T>, E>``: every test of them checks the
three arms (some, none, err).
"""
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest
from fakes import FakeAlga, Guest
from helpers import base_config

from app import service_of as svc
from runner.worker.host import scheduler as host_scheduler
from storage.registry import schedules
from storage.registry.db import open_db

SCHED = ["cap:scheduler.manage"]
INVOICE = ["cap:invoice.manual.create"]
CLIENTS = ["cap:client.read"]
SERVICES = ["cap:service.read"]
USER = {"user_id": "u-1", "user_email": "u@example.com", "user_name": "U", "user_type": "internal"}
SID = "0b0c5d1e-8f7a-4c2b-9d3e-1f2a3b4c5d6e"


def _app(shared_dirs, tmp_path_factory, **overrides):
    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("alga")), "workers": 1, **overrides})
    app.testing = True
    return app


@pytest.fixture(scope="module")
def alga():
    server = FakeAlga()
    yield server
    server.close()


@pytest.fixture
def reply(alga):
    """``reply(area, operation, status, body)`` sets a canned answer for one test."""
    keys = []

    def set_reply(area, operation, status, body):
        alga.replies[(area, operation)] = (status, body)
        keys.append((area, operation))

    yield set_reply
    for key in keys:
        alga.replies.pop(key, None)


@pytest.fixture(scope="module")
def remote(shared_dirs, tmp_path_factory, sdk_wasm, alga):
    app = _app(shared_dirs, tmp_path_factory, registry_base_url=alga.url, storage_api_token=alga.token)
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def local(shared_dirs, tmp_path_factory, sdk_wasm):
    app = _app(shared_dirs, tmp_path_factory)
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


def last_body(alga, area):
    return alga.calls(area)[-1][2]


# ============================== scheduler, attached ==========================================

INFO_CAMEL = {"id": SID, "endpointPath": "/sync", "endpointMethod": "POST", "name": "nightly", "cron": "0 2 * * *",
              "timezone": "Europe/Berlin", "enabled": True, "payload": {"full": True}, "lastRunAt": None,
              "lastRunStatus": "ok", "lastError": None, "createdAt": "2026-01-01T00:00:00.000Z"}
INFO_SNAKE = {"id": "s2", "endpoint_path": "/a", "endpoint_method": "GET", "cron": "*/5 * * * *", "timezone": "UTC",
              "enabled": False, "payload": '{"kept": "as text"}', "last_run_at": "2026-01-02T00:00:00Z",
              "last_error": "boom"}


@pytest.mark.slow
def test_list_schedules_parses_both_casings_and_drops_malformed(remote, alga, reply):
    reply("scheduler", "list", 200, {"schedules": [INFO_CAMEL, INFO_SNAKE, {"id": "bad", "cron": "x"}, "junk"]})
    out = remote.call("scheduler", "list-schedules", providers=SCHED)["ok"]
    assert last_body(alga, "scheduler") == {"operation": "list"}
    assert out[0] == {"id": SID, "endpointPath": "/sync", "endpointMethod": "POST", "name": "nightly",
                      "cron": "0 2 * * *", "timezone": "Europe/Berlin", "enabled": True, "payload": '{"full":true}',
                      "lastRunAt": None, "lastRunStatus": "ok", "lastError": None,
                      "createdAt": "2026-01-01T00:00:00.000Z"}
    assert out[1]["id"] == "s2" and out[1]["endpointPath"] == "/a" and out[1]["enabled"] is False
    assert out[1]["payload"] == '{"kept": "as text"}' and out[1]["lastRunAt"] == "2026-01-02T00:00:00Z"
    assert out[1]["lastError"] == "boom" and out[1]["name"] is None
    assert len(out) == 2


@pytest.mark.slow
def test_get_schedule_some_none_err(remote, alga, reply):
    reply("scheduler", "get", 200, {"schedule": INFO_CAMEL})
    assert remote.call("scheduler", "get-schedule", SID, providers=SCHED)["ok"]["id"] == SID
    assert last_body(alga, "scheduler") == {"operation": "get", "scheduleId": SID}
    reply("scheduler", "get", 200, {"schedule": None})
    assert remote.call("scheduler", "get-schedule", SID, providers=SCHED) == {"ok": None}
    reply("scheduler", "get", 200, {"schedule": {"id": "no other fields"}})
    assert remote.call("scheduler", "get-schedule", SID, providers=SCHED) == {"ok": None}
    for status, code in ((404, "not-found"), (400, "validation-failed"), (429, "quota-exceeded"), (401, "denied"),
                         (403, "denied"), (500, "internal")):
        reply("scheduler", "get", status, {"error": "x"})
        assert remote.call("scheduler", "get-schedule", SID, providers=SCHED) == {"err": code}


@pytest.mark.slow
def test_get_endpoints(remote, alga, reply):
    reply("scheduler", "getEndpoints", 200, {"endpoints": [
        {"id": "e1", "method": "GET", "path": "/sync", "handler": "dist/sync", "schedulable": True},
        {"id": "e2", "method": "GET", "path": "/items/:id", "handler": "h", "schedulable": False},
        {"id": "e3", "method": "GET"}]})
    out = remote.call("scheduler", "get-endpoints", providers=SCHED)["ok"]
    assert out == [{"id": "e1", "method": "GET", "path": "/sync", "handler": "dist/sync", "schedulable": True},
                   {"id": "e2", "method": "GET", "path": "/items/:id", "handler": "h", "schedulable": False}]
    assert last_body(alga, "scheduler") == {"operation": "getEndpoints"}


@pytest.mark.slow
def test_create_schedule_payloads_and_results(remote, alga, reply):
    reply("scheduler", "create", 201, {"success": True, "scheduleId": SID})
    out = remote.call("scheduler", "create-schedule", {"endpoint": "POST /sync", "cron": "0 * * * *",
                                                       "timezone": None, "enabled": None, "name": None,
                                                       "payload": None}, providers=SCHED)
    assert out["ok"] == {"success": True, "scheduleId": SID, "error": None, "fieldErrors": None}
    assert last_body(alga, "scheduler") == {"operation": "create", "endpoint": "POST /sync", "cron": "0 * * * *"}
    remote.call("scheduler", "create-schedule", {"endpoint": "/sync", "cron": "0 * * * *", "timezone": "UTC",
                                                 "enabled": False, "name": "n", "payload": '{"a": [1]}'},
                providers=SCHED)
    assert last_body(alga, "scheduler") == {"operation": "create", "endpoint": "/sync", "cron": "0 * * * *",
                                            "timezone": "UTC", "enabled": False, "name": "n", "payload": {"a": [1]}}
    # the server refuses with 400 and a result body: its texts reach the guest
    reply("scheduler", "create", 400, {"success": False, "error": "Invalid timezone",
                                       "fieldErrors": {"timezone": "Invalid timezone"}})
    out = remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *", "timezone": "Mars/X"},
                      providers=SCHED)["ok"]
    assert out == {"success": False, "scheduleId": None, "error": "Invalid timezone",
                   "fieldErrors": '{"timezone":"Invalid timezone"}'}
    # a bare status: the stable error names
    for status, text in ((400, "ValidationFailed"), (429, "QuotaExceeded"), (404, "NotFound"), (403, "Denied"),
                         (502, "Internal")):
        reply("scheduler", "create", status, {"error": "Validation error"})
        out = remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *"}, providers=SCHED)
        assert out["ok"] == {"success": False, "scheduleId": None, "error": text, "fieldErrors": None}
    # snake_case and odd fieldErrors
    reply("scheduler", "create", 201, {"success": True, "schedule_id": "snake", "field_errors": None})
    out = remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *"}, providers=SCHED)
    assert out["ok"] == {"success": True, "scheduleId": "snake", "error": None, "fieldErrors": None}


@pytest.mark.slow
@pytest.mark.parametrize("payload", ["", "not json", "5", '"text"', "null"])
def test_payload_must_be_a_json_object_or_array(remote, alga, payload):
    before = len(alga.calls("scheduler"))
    out = remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *", "payload": payload},
                      providers=SCHED)["ok"]
    assert out == {"success": False, "scheduleId": None, "error": "Payload must be valid JSON object or array",
                   "fieldErrors": '{"payload":"Payload must be valid JSON object or array"}'}
    out = remote.call("scheduler", "update-schedule", SID, {"payload": payload}, providers=SCHED)["ok"]
    assert out["success"] is False and out["error"] == "Payload must be valid JSON object or array"
    assert len(alga.calls("scheduler")) == before  # no call made


@pytest.mark.slow
def test_update_and_delete(remote, alga, reply):
    reply("scheduler", "update", 200, {"success": True})
    out = remote.call("scheduler", "update-schedule", SID, {"cron": "5 * * * *", "enabled": True}, providers=SCHED)
    assert out["ok"] == {"success": True, "error": None, "fieldErrors": None}
    assert last_body(alga, "scheduler") == {"operation": "update", "scheduleId": SID, "cron": "5 * * * *",
                                            "enabled": True}
    reply("scheduler", "update", 400, {"success": False, "error": "Schedule not found"})
    assert remote.call("scheduler", "update-schedule", SID, {}, providers=SCHED)["ok"]["error"] == "Schedule not found"
    reply("scheduler", "delete", 200, {"success": True})
    assert remote.call("scheduler", "delete-schedule", SID, providers=SCHED)["ok"] == {"success": True, "error": None}
    assert last_body(alga, "scheduler") == {"operation": "delete", "scheduleId": SID}
    reply("scheduler", "delete", 500, {"error": "boom"})
    assert remote.call("scheduler", "delete-schedule", SID, providers=SCHED)["ok"] == {"success": False,
                                                                                       "error": "Internal"}


@pytest.mark.slow
def test_scheduler_preconditions(remote, alga):
    before = len(alga.calls("scheduler"))
    denied = "Permission denied: cap:scheduler.manage not granted"
    assert remote.call("scheduler", "list-schedules") == {"err": "denied"}
    assert remote.call("scheduler", "get-schedule", SID) == {"err": "denied"}
    assert remote.call("scheduler", "get-endpoints") == {"err": "denied"}
    assert remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *"})["ok"]["error"] == denied
    assert remote.call("scheduler", "update-schedule", SID, {})["ok"]["error"] == denied
    assert remote.call("scheduler", "delete-schedule", SID)["ok"] == {"success": False, "error": denied}
    no_install = {"context": {"install_id": None}, "providers": SCHED}
    assert remote.call("scheduler", "list-schedules", **no_install) == {"err": "denied"}
    assert remote.call("scheduler", "get-schedule", SID, **no_install) == {"err": "denied"}
    assert remote.call("scheduler", "create-schedule", {"endpoint": "/s", "cron": "0 * * * *"},
                       **no_install)["ok"]["error"] == "Install ID missing"
    assert remote.call("scheduler", "delete-schedule", SID, **no_install)["ok"]["error"] == "Install ID missing"
    assert len(alga.calls("scheduler")) == before


# ============================== invoicing =====================================================

INVOICE_INPUT = {"clientId": "c-1", "items": [
    {"serviceId": "s-1", "quantity": 2, "description": "Work", "rate": 150.5},
    {"serviceId": "s-2", "quantity": 1, "description": "Discount", "rate": 10, "isDiscount": True,
     "discountType": "percentage", "appliesToItemId": "item-1", "appliesToServiceId": None}],
    "invoiceDate": "2026-01-31", "dueDate": None, "poNumber": "PO-7"}


@pytest.mark.slow
def test_invoice_payload_omits_absent_fields_and_parses_nested_answer(remote, alga, reply):
    reply("invoicing", "createManualInvoice", 200, {"success": True, "invoice": {
        "invoiceId": "inv-1", "invoice_number": "INV-0001", "status": "draft", "subtotal": 301, "tax": 30.1,
        "total": 331.1}})
    out = remote.call("invoicing", "create-manual-invoice", INVOICE_INPUT, providers=INVOICE)["ok"]
    assert out == {"success": True, "invoiceId": "inv-1", "invoiceNumber": "INV-0001", "status": "draft",
                   "subtotal": 301.0, "tax": 30.1, "total": 331.1, "error": None, "fieldErrors": None}
    assert last_body(alga, "invoicing") == {
        "operation": "createManualInvoice", "clientId": "c-1", "invoiceDate": "2026-01-31", "poNumber": "PO-7",
        "items": [{"serviceId": "s-1", "quantity": 2, "description": "Work", "rate": 150.5},
                  {"serviceId": "s-2", "quantity": 1, "description": "Discount", "rate": 10, "isDiscount": True,
                   "discountType": "percentage", "appliesToItemId": "item-1"}]}


@pytest.mark.slow
def test_invoice_failures(remote, reply):
    def create():
        return remote.call("invoicing", "create-manual-invoice", INVOICE_INPUT, providers=INVOICE)["ok"]

    reply("invoicing", "createManualInvoice", 400, '{"success":false,"fieldErrors":{"clientId":"required"}}')
    out = create()
    assert out["success"] is False
    assert out["error"] == 'http 400: {"success":false,"fieldErrors":{"clientId":"required"}}'
    reply("invoicing", "createManualInvoice", 400, {"success": False, "error": "Validation error",
                                                    "fieldErrors": {"items[0].rate": "Must be >= 0"}})
    out = create()  # the server's refusal keeps its field errors (the reference loses them)
    assert (out["error"], out["fieldErrors"]) == ("Validation error", '{"items[0].rate":"Must be >= 0"}')
    reply("invoicing", "createManualInvoice", 200, "not json")
    assert create()["error"] == "invalid JSON response"
    reply("invoicing", "createManualInvoice", 200, [1, 2])
    assert create()["error"] == "invalid response"
    reply("invoicing", "createManualInvoice", 200, {"success": False, "error": "Client not found",
                                                    "field_errors": {"clientId": "unknown"}})
    out = create()
    assert out["error"] == "Client not found" and out["fieldErrors"] == '{"clientId":"unknown"}'
    reply("invoicing", "createManualInvoice", 200, {"success": False, "fieldErrors": "already text"})
    assert create()["fieldErrors"] == "already text"


@pytest.mark.slow
def test_invoice_preconditions_and_standalone(remote, local):
    out = remote.call("invoicing", "create-manual-invoice", INVOICE_INPUT)["ok"]
    assert out["success"] is False and out["error"] == "Permission denied: cap:invoice.manual.create not granted"
    out = remote.call("invoicing", "create-manual-invoice", INVOICE_INPUT, providers=INVOICE,
                      context={"install_id": None})["ok"]
    assert out["error"] == "Permission denied: install_id missing"
    out = local.call("invoicing", "create-manual-invoice", INVOICE_INPUT, providers=INVOICE)["ok"]
    # The standalone registry answers as the server does; this guest's install is not in it (invoices
    # themselves: tests/test_invoicing.py).
    assert (out["success"], out["error"]) == (False, 'http 404: {"error": "Install not found"}')


# ============================== clients and services, attached ===============================

CLIENT = {"clientId": "c-1", "clientName": "Acme", "clientType": "company", "isInactive": False,
          "defaultCurrencyCode": "USD", "accountManagerId": None, "accountManagerName": "Ann",
          "billingEmail": "billing@acme.test"}
CLIENT_OUT = {"clientId": "c-1", "clientName": "Acme", "clientType": "company", "isInactive": False,
              "defaultCurrencyCode": "USD", "accountManagerId": None, "accountManagerName": "Ann",
              "billingEmail": "billing@acme.test"}
SERVICE = {"service_id": "s-1", "service_name": "Support", "item_kind": "service", "billing_method": "hourly",
           "default_rate": 120, "unit_of_measure": "hour", "is_active": True, "sku": None,
           "service_type_id": "t-1", "service_type_name": "Labor", "unitCode": "h"}
SERVICE_OUT = {"serviceId": "s-1", "serviceName": "Support", "serviceTypeId": "t-1", "serviceTypeName": "Labor",
               "itemKind": "service", "billingMethod": "hourly", "defaultRate": 120.0, "unitOfMeasure": "hour",
               "isActive": True, "sku": None}


@pytest.mark.slow
def test_list_clients(remote, alga, reply):
    reply("clients", "list", 200, {"items": [CLIENT, {"client_id": "c-2", "client_name": "Beta"}],
                                   "total_count": 2, "page": 1, "page_size": 10})
    out = remote.call("clients", "list-clients", {"search": "ac", "includeInactive": None, "page": None,
                                                  "pageSize": 10}, providers=CLIENTS, user=USER)["ok"]
    assert out == {"items": [CLIENT_OUT, {"clientId": "c-2", "clientName": "Beta", "clientType": None,
                                          "isInactive": False, "defaultCurrencyCode": None, "accountManagerId": None,
                                          "accountManagerName": None, "billingEmail": None}],
                   "totalCount": 2, "page": 1, "pageSize": 10}
    assert last_body(alga, "clients") == {"operation": "list",
                                          "input": {"search": "ac", "page": 1, "pageSize": 10},
                                          "user": {"userId": "u-1", "userType": "internal"}}
    reply("clients", "list", 200, {"items": []})
    remote.call("clients", "list-clients", {"includeInactive": True}, providers=CLIENTS)
    assert last_body(alga, "clients") == {"operation": "list",
                                          "input": {"includeInactive": True, "page": 1, "pageSize": 25}}
    assert remote.call("clients", "list-clients", {}, providers=CLIENTS)["ok"] == {
        "items": [], "totalCount": 0, "page": 1, "pageSize": 25}


@pytest.mark.slow
def test_list_clients_errors(remote, alga, reply):
    before = len(alga.calls("clients"))
    for bad in ({"page": 0}, {"pageSize": 0}, {"pageSize": 101}):
        assert remote.call("clients", "list-clients", bad, providers=CLIENTS) == {"err": "invalid-input"}
    assert len(alga.calls("clients")) == before  # refused before any call
    reply("clients", "list", 200, {"items": [{"clientId": 5, "clientName": "x"}]})
    assert remote.call("clients", "list-clients", {}, providers=CLIENTS) == {"err": "internal"}
    for status, code in ((400, "invalid-input"), (401, "not-allowed"), (403, "not-allowed"), (404, "internal"),
                         (500, "internal")):
        reply("clients", "list", status, {"error": "x"})
        assert remote.call("clients", "list-clients", {}, providers=CLIENTS) == {"err": code}
    assert remote.call("clients", "list-clients", {}) == {"err": "not-allowed"}
    assert remote.call("clients", "list-clients", {}, providers=CLIENTS,
                       context={"install_id": None}) == {"err": "not-allowed"}


@pytest.mark.slow
def test_get_client_some_none_err(remote, alga, reply):
    reply("clients", "get", 200, {"item": CLIENT})
    assert remote.call("clients", "get-client", "c-1", providers=CLIENTS) == {"ok": CLIENT_OUT}
    assert last_body(alga, "clients") == {"operation": "get", "input": {"clientId": "c-1"}}
    reply("clients", "get", 200, {"item": None})
    assert remote.call("clients", "get-client", "c-1", providers=CLIENTS) == {"ok": None}
    reply("clients", "get", 200, {})
    assert remote.call("clients", "get-client", "c-1", providers=CLIENTS) == {"err": "internal"}  # key absent
    reply("clients", "get", 200, {"item": {"clientId": "c-1"}})
    assert remote.call("clients", "get-client", "c-1", providers=CLIENTS) == {"err": "internal"}
    reply("clients", "get", 400, {"error": "Invalid request payload"})
    assert remote.call("clients", "get-client", "c-1", providers=CLIENTS) == {"err": "invalid-input"}
    assert remote.call("clients", "get-client", "c-1") == {"err": "not-allowed"}


@pytest.mark.slow
def test_list_services(remote, alga, reply):
    reply("services", "list", 200, {"items": [SERVICE], "totalCount": 1, "page": 2, "pageSize": 5})
    out = remote.call("services", "list-services", {"search": "sup", "itemKind": "service", "isActive": True,
                                                    "billingMethod": "hourly", "page": 2, "pageSize": 5},
                      providers=SERVICES)["ok"]
    assert out == {"items": [SERVICE_OUT], "totalCount": 1, "page": 2, "pageSize": 5}
    assert last_body(alga, "services") == {"operation": "list", "input": {
        "search": "sup", "itemKind": "service", "isActive": True, "billingMethod": "hourly", "page": 2,
        "pageSize": 5}}
    reply("services", "list", 200, {"items": [{**SERVICE, "item_kind": "bundle"}]})
    assert remote.call("services", "list-services", {}, providers=SERVICES) == {"err": "internal"}
    reply("services", "list", 200, {"items": [{**SERVICE, "billing_method": "monthly"}]})
    assert remote.call("services", "list-services", {}, providers=SERVICES) == {"err": "internal"}
    reply("services", "list", 200, {"items": [{"serviceId": "s", "serviceName": "n", "itemKind": "product",
                                               "billingMethod": "fixed"}]})
    item = remote.call("services", "list-services", {}, providers=SERVICES)["ok"]["items"][0]
    assert item["defaultRate"] == 0.0 and item["unitOfMeasure"] == "" and item["isActive"] is True
    assert remote.call("services", "list-services", {"pageSize": 500}, providers=SERVICES) == {"err": "invalid-input"}


@pytest.mark.slow
def test_get_service_some_none_err(remote, alga, reply):
    reply("services", "get", 200, {"item": SERVICE})
    assert remote.call("services", "get-service", "s-1", providers=SERVICES, user=USER) == {"ok": SERVICE_OUT}
    assert last_body(alga, "services") == {"operation": "get", "input": {"serviceId": "s-1"},
                                           "user": {"userId": "u-1", "userType": "internal"}}
    reply("services", "get", 200, {"item": None})
    assert remote.call("services", "get-service", "s-1", providers=SERVICES) == {"ok": None}
    reply("services", "get", 403, {"error": "Permission denied"})
    assert remote.call("services", "get-service", "s-1", providers=SERVICES) == {"err": "not-allowed"}
    assert remote.call("services", "get-service", "s-1") == {"err": "not-allowed"}


@pytest.mark.slow
def test_not_configured_token_is_internal(make_app, sdk_wasm, alga):
    guest = Guest(make_app(workers=1, registry_base_url=alga.url), sdk_wasm)  # no token
    assert guest.call("clients", "get-client", "c", providers=CLIENTS) == {"err": "internal"}
    assert guest.call("scheduler", "list-schedules", providers=SCHED) == {"err": "internal"}
    out = guest.call("scheduler", "delete-schedule", SID, providers=SCHED)["ok"]
    assert out == {"success": False, "error": "Internal"}
    out = guest.call("invoicing", "create-manual-invoice", INVOICE_INPUT, providers=INVOICE)["ok"]
    assert out["error"] == "runner auth token not configured"


# ============================== standalone: the SQLite registry ===============================

@pytest.fixture(scope="module")
def registry(local):
    """The local app's registry, with an install whose version declares endpoints, and seed data."""
    db_path = svc(local.client.application).settings.registry.registry_db
    conn = open_db(db_path).conn
    conn.execute("INSERT INTO extension_registry (id, publisher, name) VALUES ('reg-1', 'acme', 'demo')")
    conn.execute("INSERT INTO extension_version (id, registry_id, version, runtime, main_entry, api_endpoints) "
                 "VALUES ('ver-1', 'reg-1', '1.0.0', 'wasm-js@1', 'dist/main.wasm', ?)",
                 (json.dumps([{"method": "GET", "path": "/sync", "handler": "sync"},
                              {"method": "POST", "path": "reports/run", "handler": "run"},
                              {"method": "GET", "path": "/items/:id", "handler": "item"},
                              {"method": "DELETE", "path": "/purge", "handler": "purge"}]),))
    conn.execute("INSERT INTO tenant_extension_install (id, tenant_id, registry_id, version_id) "
                 "VALUES ('install-reg', 'tenant-a', 'reg-1', 'ver-1')")
    clients = [CLIENT, {"clientName": "beta corp", "isInactive": True, "billingEmail": "x@beta.test"},
               {"client_id": "c-3", "client_name": "Charlie", "billing_email": "acme-partner@c.test"}]
    for i, c in enumerate(clients):
        conn.execute("INSERT INTO seed_client (tenant_id, client_id, data) VALUES ('tenant-a', ?, ?)",
                     (c.get("clientId") or c.get("client_id") or f"c-{i + 1}", json.dumps(c)))
    conn.execute("INSERT INTO seed_client (tenant_id, client_id, data) VALUES ('tenant-b', 'c-x', ?)",
                 (json.dumps({"clientName": "Other tenant"}),))
    services = [SERVICE, {"serviceId": "s-2", "serviceName": "Laptop", "itemKind": "product", "billingMethod": "fixed",
                          "defaultRate": 999.5, "sku": "LAP-1", "isActive": False},
                {"serviceId": "s-3", "serviceName": "Backup", "itemKind": "service", "billingMethod": "usage",
                 "description": "offsite support"}]
    for s in services:
        conn.execute("INSERT INTO seed_service (tenant_id, service_id, data) VALUES ('tenant-a', ?, ?)",
                     (s.get("serviceId") or s.get("service_id"), json.dumps(s)))
    return db_path


def rows(db_path, install):
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute("SELECT * FROM ext_schedule WHERE install_id = ? ORDER BY created_at",
                                          (install,))]


@pytest.mark.slow
def test_local_schedule_lifecycle(local, registry):
    ctx = {"providers": SCHED, "context": {"install_id": "install-reg"}}
    call = lambda fn, *args: local.call("scheduler", fn, *args, **ctx)  # noqa: E731
    assert call("list-schedules") == {"ok": []}
    endpoints = call("get-endpoints")["ok"]
    assert [(e["method"], e["path"], e["schedulable"]) for e in endpoints] == [
        ("GET", "/items/:id", False), ("DELETE", "/purge", False), ("POST", "/reports/run", True),
        ("GET", "/sync", True)]
    created = call("create-schedule", {"endpoint": "/sync", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
                                       "name": " nightly ", "payload": '{"full": true}'})["ok"]
    assert created["success"] is True, created
    sid = created["scheduleId"]
    info = call("get-schedule", sid)["ok"]
    assert info["endpointPath"] == "/sync" and info["endpointMethod"] == "GET" and info["name"] == "nightly"
    assert info["payload"] == '{"full":true}' and info["enabled"] is True and info["timezone"] == "Europe/Berlin"
    assert info["createdAt"].endswith("Z")
    row = rows(registry, "install-reg")[0]
    expected = schedules.next_run_at("30 2 * * *", "Europe/Berlin")
    assert row["next_run_at"] == expected
    when = datetime.strptime(row["next_run_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert timedelta(0) < when - datetime.now(timezone.utc) <= timedelta(days=1, hours=1)
    # update: a new cron moves next_run_at; disabling clears it; a name change keeps it
    assert call("update-schedule", sid, {"cron": "0 12 * * *"})["ok"]["success"] is True
    assert rows(registry, "install-reg")[0]["next_run_at"] == schedules.next_run_at("0 12 * * *", "Europe/Berlin")
    assert call("update-schedule", sid, {"enabled": False})["ok"]["success"] is True
    assert rows(registry, "install-reg")[0]["next_run_at"] is None
    assert call("update-schedule", sid, {"name": "renamed", "endpoint": "POST reports/run"})["ok"]["success"]
    info = call("get-schedule", sid)["ok"]
    assert (info["name"], info["endpointMethod"], info["endpointPath"], info["enabled"]) == (
        "renamed", "POST", "/reports/run", False)
    assert [s["id"] for s in call("list-schedules")["ok"]] == [sid]
    # other installs see nothing
    assert local.call("scheduler", "get-schedule", sid, providers=SCHED) == {"ok": None}
    assert local.call("scheduler", "delete-schedule", sid, providers=SCHED)["ok"] == {
        "success": False, "error": "Schedule not found"}
    assert call("delete-schedule", sid)["ok"] == {"success": True, "error": None}
    assert call("get-schedule", sid) == {"ok": None}
    assert call("get-schedule", "not-a-uuid") == {"err": "validation-failed"}


@pytest.mark.slow
@pytest.mark.parametrize("schedule,field,error", [
    ({"cron": "* * * * * *"}, "cron", "Invalid cron expression (expected 5 fields: m h dom mon dow)"),
    ({"cron": "*/2 * * * *"}, "cron", "Cron too frequent (minimum interval is 5 minutes)"),
    ({"cron": "0 0 1 * 1"}, "cron", "Cron cannot set both day-of-month and day-of-week"),
    ({"cron": "0 0 * * MON"}, "cron", "Invalid cron expression (unsupported characters)"),
    ({"cron": "99 0 * * *"}, "cron", "Invalid cron expression"),
    ({"timezone": "Mars/Olympus"}, "timezone", "Invalid timezone"),
    ({"payload": "[1, 2]", "name": "x" * 129}, None, None),  # name length: the route's schema (400, no body)
    ({"endpoint": "/items/:id"}, "endpoint", "Endpoint not found or not schedulable"),
    ({"endpoint": "DELETE /purge"}, "endpoint", "Endpoint not found or not schedulable"),
    ({"endpoint": "/unknown"}, "endpoint", "Endpoint not found or not schedulable"),
])
def test_local_validation(local, registry, schedule, field, error):
    base = {"endpoint": "GET /sync", "cron": "0 * * * *"}
    out = local.call("scheduler", "create-schedule", {**base, **schedule}, providers=SCHED,
                     context={"install_id": "install-reg"})["ok"]
    assert out["success"] is False
    if field is None:
        assert out == {"success": False, "scheduleId": None, "error": "ValidationFailed", "fieldErrors": None}
    else:
        assert out["error"] == error and json.loads(out["fieldErrors"]) == {field: error}


@pytest.mark.slow
def test_local_without_registry_entry_accepts_method_and_path(local):
    ctx = {"providers": SCHED, "context": {"install_id": "unregistered"}}
    out = local.call("scheduler", "create-schedule", {"endpoint": "/hook", "cron": "*/5 * * * *"}, **ctx)["ok"]
    info = local.call("scheduler", "get-schedule", out["scheduleId"], **ctx)["ok"]
    assert (info["endpointMethod"], info["endpointPath"], info["timezone"]) == ("POST", "/hook", "UTC")
    out = local.call("scheduler", "create-schedule", {"endpoint": "get  //a//b", "cron": "0 0 * * 0"}, **ctx)["ok"]
    info = local.call("scheduler", "get-schedule", out["scheduleId"], **ctx)["ok"]
    assert (info["endpointMethod"], info["endpointPath"]) == ("GET", "/a/b")
    assert local.call("scheduler", "get-endpoints", **ctx) == {"ok": []}
    bad = local.call("scheduler", "create-schedule", {"endpoint": "PUT /x", "cron": "0 0 * * 0"}, **ctx)["ok"]
    assert bad["error"] == "Endpoint not found or not schedulable"


@pytest.mark.slow
def test_local_names_are_unique_and_installs_are_capped(local):
    ctx = {"providers": SCHED, "context": {"install_id": "quota"}}
    create = lambda name=None: local.call("scheduler", "create-schedule",  # noqa: E731
                                          {"endpoint": "/x", "cron": "0 * * * *", "name": name}, **ctx)["ok"]
    first = create("same")
    assert first["success"]
    dup = create("same")
    assert dup["error"] == "Schedule name already in use for this extension"
    second = create("other")
    assert local.call("scheduler", "update-schedule", second["scheduleId"], {"name": "same"},
                      **ctx)["ok"]["error"] == "Schedule name already in use for this extension"
    for _ in range(schedules.MAX_SCHEDULES_PER_INSTALL - 2):
        assert create()["success"]
    assert create() == {"success": False, "scheduleId": None,
                        "error": "Too many schedules (max 50 per extension install)", "fieldErrors": None}


def test_next_run_at_follows_the_timezone_and_dst():
    after = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)
    # 02:30 does not exist in Berlin on 2026-03-29: the run moves to 03:00 local (01:00 UTC)
    assert schedules.next_run_at("30 2 * * *", "Europe/Berlin", after) == "2026-03-29T01:00:00.000Z"
    assert schedules.next_run_at("0 9 * * 1", "America/New_York", after) == "2026-03-30T13:00:00.000Z"
    assert schedules.next_run_at("*/5 * * * *", "UTC", after) == "2026-03-28T12:05:00.000Z"


def test_scheduler_parse_helpers():
    assert host_scheduler.parse_schedule_info({"id": "x"}) is None
    assert host_scheduler.parse_schedule_info(None) is None
    assert host_scheduler.parse_endpoint_info({"id": "e", "method": "GET", "path": "/", "handler": "h",
                                               "schedulable": "yes"}) is None


@pytest.mark.slow
def test_local_clients(local, registry):
    call = lambda fn, *a, **kw: local.call("clients", fn, *a, providers=CLIENTS, **kw)  # noqa: E731
    out = call("list-clients", {})["ok"]
    assert [c["clientName"] for c in out["items"]] == ["Acme", "Charlie"]  # inactive hidden, sorted by name
    assert (out["totalCount"], out["page"], out["pageSize"]) == (2, 1, 25)
    out = call("list-clients", {"includeInactive": True})["ok"]
    assert [c["clientName"] for c in out["items"]] == ["Acme", "beta corp", "Charlie"]
    assert out["items"][1]["clientId"] == "c-2"  # taken from the row when the data has none
    assert [c["clientName"] for c in call("list-clients", {"search": "ACME"})["ok"]["items"]] == ["Acme", "Charlie"]
    page = call("list-clients", {"includeInactive": True, "page": 2, "pageSize": 2})["ok"]
    assert [c["clientName"] for c in page["items"]] == ["Charlie"] and page["totalCount"] == 3
    assert call("list-clients", {"search": "x" * 201}) == {"err": "invalid-input"}
    assert call("get-client", "c-1") == {"ok": CLIENT_OUT}
    assert call("get-client", "c-x") == {"ok": None}  # another tenant's client
    assert call("get-client", "nope") == {"ok": None}


@pytest.mark.slow
def test_local_services(local, registry):
    call = lambda fn, *a, **kw: local.call("services", fn, *a, providers=SERVICES, **kw)  # noqa: E731
    names = lambda out: [s["serviceName"] for s in out["ok"]["items"]]  # noqa: E731
    assert names(call("list-services", {})) == ["Backup", "Laptop", "Support"]
    assert names(call("list-services", {"itemKind": "product"})) == ["Laptop"]
    assert names(call("list-services", {"isActive": True})) == ["Backup", "Support"]
    assert names(call("list-services", {"isActive": False})) == ["Laptop"]
    assert names(call("list-services", {"billingMethod": "usage"})) == ["Backup"]
    assert names(call("list-services", {"search": "SUPPORT"})) == ["Backup", "Support"]  # description matches
    assert names(call("list-services", {"search": "lap-"})) == ["Laptop"]  # sku
    assert call("get-service", "s-1") == {"ok": SERVICE_OUT}
    assert call("get-service", "s-2")["ok"]["defaultRate"] == 999.5
    assert call("get-service", "missing") == {"ok": None}
    assert local.call("services", "get-service", "s-1") == {"err": "not-allowed"}
